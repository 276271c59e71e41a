import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../observe/log.ts';
import type { Notification, Request, RequestId, Response } from './jsonrpc.ts';
import { ErrorCode, errorResponse, isNotification, isRequest, isResponse, progressTokenOf, resultResponse, withIds } from './jsonrpc.ts';

/** What the multiplexer needs from one upstream MCP connection (a stdio child, an SDK client transport). */
export interface UpstreamChannel {
  /** Sends one message; false when the upstream is not running. */
  send(message: JSONRPCMessage): boolean;
  /** Every message the upstream sends. */
  onMessage(handler: (message: unknown) => void): void;
  /** A fresh upstream process or connection is up and must be initialized. */
  onStart(handler: () => void): void;
  /** The upstream went away; in-flight requests cannot complete. */
  onStop(handler: (reason: string) => void): void;
}

export interface UpstreamInfo {
  readonly protocolVersion: string;
  readonly capabilities: Record<string, unknown>;
  readonly serverInfo: Record<string, unknown>;
  readonly instructions?: string;
}

interface Session {
  readonly id: number;
  readonly transport: Transport;
  capabilities: Record<string, unknown>;
  readonly subscriptions: Set<string>;
  /** Downstream ids of this session's requests in flight, newest last. */
  readonly inflight: RequestId[];
  lastActive: number;
  /** The transport's own close handler, kept when berth takes `onclose` over. */
  readonly previousClose: (() => void) | undefined;
}

interface Pending {
  readonly session: Session;
  readonly id: RequestId;
  readonly progressToken?: string;
}

interface ServerRequest {
  readonly session: Session;
  readonly upstreamId: RequestId;
}

const BROADCAST = new Set([
  'notifications/tools/list_changed',
  'notifications/resources/list_changed',
  'notifications/prompts/list_changed',
  'notifications/message',
]);
const CLIENT_CAPABILITY_FOR: Readonly<Record<string, string>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/**
 * Serves many downstream MCP sessions from one upstream MCP connection.
 * berth initializes the upstream once (again after each restart) and answers
 * downstream `initialize` itself; request ids and progress tokens are
 * rewritten so sessions cannot collide; responses, progress and cancellations
 * find their way back; server-initiated requests go to the session whose
 * request is in flight (the one that caused them), list_changed and log
 * notifications go to everyone, resource updates to subscribers.
 */
export class Multiplexer {
  readonly #name: string;
  readonly #channel: UpstreamChannel;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #sessions = new Set<Session>();
  readonly #pending = new Map<string, Pending>();
  readonly #progress = new Map<string, { session: Session; token: RequestId; related: RequestId }>();
  readonly #serverRequests = new Map<string, ServerRequest>();
  #nextId = 1;
  #nextSession = 1;
  #info: UpstreamInfo | undefined;
  #initId: string | undefined;
  #generation = 0;
  #waiters: { resolve: (info: UpstreamInfo) => void; reject: (err: Error) => void }[] = [];
  #lastError: string | undefined;

  constructor(options: { name: string; channel: UpstreamChannel; logger: Logger; now?: () => number }) {
    this.#name = options.name;
    this.#channel = options.channel;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.#channel.onMessage((m) => this.#fromUpstream(m));
    this.#channel.onStart(() => this.#initializeUpstream());
    this.#channel.onStop((reason) => this.#upstreamStopped(reason));
  }

  /** The upstream's initialize result once ready; waits (bounded by the signal) while it starts. */
  ready(signal?: AbortSignal): Promise<UpstreamInfo> {
    if (this.#info !== undefined) return Promise.resolve(this.#info);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      this.#waiters.push(waiter);
      signal?.addEventListener('abort', () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(this.#lastError === undefined ? `server ${this.#name} is not ready` : `server ${this.#name} is not ready: ${this.#lastError}`));
      }, { once: true });
    });
  }

  get info(): UpstreamInfo | undefined {
    return this.#info;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Requests forwarded upstream and not yet answered. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** When any session last did something; for idle shutdown of per-user instances. */
  lastActivity(): number {
    let last = 0;
    for (const s of this.#sessions) last = Math.max(last, s.lastActive);
    return last;
  }

  /**
   * Connects a downstream transport (a streamable HTTP or SSE session). The
   * transport's own `onclose` detaches it. Session clients declare their
   * capabilities in `initialize`; stateless ones per request, given here.
   */
  attach(transport: Transport, capabilities: Record<string, unknown> = {}): void {
    const session: Session = { id: this.#nextSession++, transport, capabilities, subscriptions: new Set(), inflight: [], lastActive: this.#now(), previousClose: transport.onclose };
    this.#adopt(session);
  }

  /**
   * Moves every session to another multiplexer (the replacement of this
   * server) and tells their clients to list again. Requests in flight here
   * fail: the upstream that was working on them is going away.
   */
  handOver(to: Multiplexer): void {
    this.#upstreamStopped('server replaced');
    for (const session of [...this.#sessions]) {
      this.#sessions.delete(session);
      to.#adopt(session);
    }
    for (const method of ['notifications/tools/list_changed', 'notifications/prompts/list_changed', 'notifications/resources/list_changed']) to.broadcast(method);
  }

  #adopt(session: Session): void {
    session.inflight.length = 0;
    this.#sessions.add(session);
    session.transport.onmessage = (message) => this.#fromDownstream(session, message);
    session.transport.onclose = () => {
      this.#detach(session);
      session.previousClose?.();
    };
  }

  /** Sends a notification to every session, e.g. tools/list_changed after a reload. */
  broadcast(method: string, params?: Record<string, unknown>): void {
    for (const session of this.#sessions) void this.#deliver(session, { jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) } as JSONRPCMessage);
  }

  #detach(session: Session): void {
    if (!this.#sessions.delete(session)) return;
    for (const [key, pending] of this.#pending) {
      if (pending.session !== session) continue;
      this.#pending.delete(key);
      // The client is gone: tell the upstream to stop working on its behalf.
      this.#channel.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: decodeId(key), reason: 'client disconnected' } } as JSONRPCMessage);
    }
    for (const [key, p] of this.#progress) if (p.session === session) this.#progress.delete(key);
    for (const [key, r] of this.#serverRequests) {
      if (r.session !== session) continue;
      this.#serverRequests.delete(key);
      this.#channel.send(errorResponse(r.upstreamId, ErrorCode.internalError, 'client disconnected'));
    }
  }

  #fromDownstream(session: Session, message: unknown): void {
    session.lastActive = this.#now();
    if (isRequest(message)) {
      void this.#downstreamRequest(session, message);
    } else if (isResponse(message)) {
      const pending = this.#serverRequests.get(encodeId(message.id));
      if (pending === undefined) return;
      this.#serverRequests.delete(encodeId(message.id));
      this.#channel.send({ ...message, id: pending.upstreamId } as JSONRPCMessage);
    } else if (isNotification(message)) {
      this.#downstreamNotification(session, message);
    }
  }

  async #downstreamRequest(session: Session, request: Request): Promise<void> {
    switch (request.method) {
      case 'initialize':
        return this.#answerInitialize(session, request);
      case 'ping':
        return this.#deliver(session, resultResponse(request.id, {}), request.id);
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        const uri = request.params?.['uri'];
        if (typeof uri === 'string') {
          if (request.method === 'resources/subscribe') session.subscriptions.add(uri);
          else session.subscriptions.delete(uri);
        }
        break;
      }
    }
    if (this.#info === undefined) {
      try {
        await this.ready(AbortSignal.timeout(30_000));
      } catch (err) {
        return this.#deliver(session, errorResponse(request.id, ErrorCode.upstreamUnavailable, (err as Error).message), request.id);
      }
    }
    const upstreamId = this.#nextId++;
    const token = progressTokenOf(request);
    const upstreamToken = token === undefined ? undefined : `p${upstreamId}`;
    this.#pending.set(encodeId(upstreamId), { session, id: request.id, ...(upstreamToken === undefined ? {} : { progressToken: upstreamToken }) });
    if (upstreamToken !== undefined && token !== undefined) this.#progress.set(upstreamToken, { session, token, related: request.id });
    session.inflight.push(request.id);
    if (!this.#channel.send(withIds(request, upstreamId, upstreamToken) as JSONRPCMessage)) {
      this.#settle(encodeId(upstreamId));
      void this.#deliver(session, errorResponse(request.id, ErrorCode.upstreamUnavailable, `server ${this.#name} is not running`), request.id);
    }
  }

  #answerInitialize(session: Session, request: Request): Promise<void> {
    const params = request.params ?? {};
    session.capabilities = (params['capabilities'] as Record<string, unknown> | undefined) ?? {};
    const requested = typeof params['protocolVersion'] === 'string' ? params['protocolVersion'] : LATEST_PROTOCOL_VERSION;
    const protocolVersion = SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
    return this.ready(AbortSignal.timeout(60_000)).then(
      (info) =>
        this.#deliver(session, resultResponse(request.id, {
          protocolVersion,
          capabilities: info.capabilities,
          serverInfo: info.serverInfo,
          ...(info.instructions === undefined ? {} : { instructions: info.instructions }),
        }), request.id),
      (err: Error) => this.#deliver(session, errorResponse(request.id, ErrorCode.upstreamUnavailable, err.message), request.id),
    );
  }

  #downstreamNotification(session: Session, notification: Notification): void {
    switch (notification.method) {
      case 'notifications/initialized':
        return; // the upstream was initialized by berth, once
      case 'notifications/cancelled': {
        const requestId = notification.params?.['requestId'];
        for (const [key, pending] of this.#pending) {
          if (pending.session !== session || pending.id !== requestId) continue;
          this.#settle(key);
          this.#channel.send({ ...notification, params: { ...notification.params, requestId: decodeId(key) } } as JSONRPCMessage);
        }
        return;
      }
      default:
        // Includes progress on server-initiated requests: those carry the upstream's own token.
        this.#channel.send(notification as JSONRPCMessage);
    }
  }

  #fromUpstream(message: unknown): void {
    if (isResponse(message)) {
      if (this.#initId !== undefined && message.id === this.#initId) return this.#initialized(message);
      const key = encodeId(message.id);
      const pending = this.#pending.get(key);
      if (pending === undefined) return; // cancelled or from before a restart
      this.#settle(key);
      void this.#deliver(pending.session, { ...message, id: pending.id } as JSONRPCMessage, pending.id);
    } else if (isRequest(message)) {
      this.#upstreamRequest(message);
    } else if (isNotification(message)) {
      this.#upstreamNotification(message);
    }
  }

  #upstreamRequest(request: Request): void {
    if (request.method === 'ping') {
      this.#channel.send(resultResponse(request.id, {}));
      return;
    }
    const session = this.#targetSession();
    const capability = CLIENT_CAPABILITY_FOR[request.method];
    if (session === undefined || (capability !== undefined && session.capabilities[capability] === undefined)) {
      const why = session === undefined ? 'no client is connected' : `the client does not support ${capability}`;
      this.#channel.send(errorResponse(request.id, ErrorCode.methodNotFound, `berth cannot forward ${request.method}: ${why}`));
      return;
    }
    const downstreamId = `berth-${this.#nextId++}`;
    this.#serverRequests.set(encodeId(downstreamId), { session, upstreamId: request.id });
    void this.#deliver(session, { ...request, id: downstreamId } as JSONRPCMessage, session.inflight.at(-1));
  }

  #upstreamNotification(notification: Notification): void {
    const method = notification.method;
    if (method === 'notifications/progress') {
      const token = notification.params?.['progressToken'];
      const target = this.#progress.get(String(token));
      if (target === undefined) return;
      void this.#deliver(target.session, { ...notification, params: { ...notification.params, progressToken: target.token } } as JSONRPCMessage, target.related);
    } else if (method === 'notifications/cancelled') {
      const requestId = notification.params?.['requestId'];
      for (const [key, r] of this.#serverRequests) {
        if (r.upstreamId !== requestId) continue;
        this.#serverRequests.delete(key);
        void this.#deliver(r.session, { ...notification, params: { ...notification.params, requestId: decodeId(key) } } as JSONRPCMessage);
      }
    } else if (method === 'notifications/resources/updated') {
      const uri = notification.params?.['uri'];
      for (const s of this.#sessions) if (typeof uri === 'string' && s.subscriptions.has(uri)) void this.#deliver(s, notification as JSONRPCMessage);
    } else if (BROADCAST.has(method)) {
      for (const s of this.#sessions) void this.#deliver(s, notification as JSONRPCMessage);
    } else {
      this.#log.debug({ server: this.#name, method }, 'upstream notification not forwarded');
    }
  }

  /** The session a server-initiated request belongs to: the one with the newest request in flight. */
  #targetSession(): Session | undefined {
    let best: Session | undefined;
    for (const s of this.#sessions) {
      if (s.inflight.length === 0) continue;
      if (best === undefined || s.lastActive > best.lastActive) best = s;
    }
    if (best !== undefined) return best;
    for (const s of this.#sessions) if (best === undefined || s.lastActive > best.lastActive) best = s;
    return best;
  }

  #settle(key: string): void {
    const pending = this.#pending.get(key);
    if (pending === undefined) return;
    this.#pending.delete(key);
    if (pending.progressToken !== undefined) this.#progress.delete(pending.progressToken);
    const idx = pending.session.inflight.indexOf(pending.id);
    if (idx >= 0) pending.session.inflight.splice(idx, 1);
  }

  #deliver(session: Session, message: JSONRPCMessage, relatedRequestId?: RequestId): Promise<void> {
    return session.transport.send(message, relatedRequestId === undefined ? undefined : { relatedRequestId }).catch((err: unknown) => {
      this.#log.debug({ server: this.#name, err }, 'could not deliver to client');
    });
  }

  #initializeUpstream(): void {
    this.#generation++;
    this.#initId = `berth-init-${this.#generation}`;
    this.#channel.send({
      jsonrpc: '2.0',
      id: this.#initId,
      method: 'initialize',
      params: {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        // berth forwards these to whichever client can answer them.
        capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } },
        clientInfo: { name: 'berth', version: '0.1.0' },
      },
    } as JSONRPCMessage);
  }

  #initialized(response: Response): void {
    this.#initId = undefined;
    if (response.error !== undefined || response.result === undefined) {
      this.#lastError = `initialize failed: ${response.error?.message ?? 'no result'}`;
      this.#log.warn({ server: this.#name, error: response.error }, 'upstream initialize failed');
      return;
    }
    const r = response.result;
    const restarted = this.#generation > 1;
    this.#info = {
      protocolVersion: String(r['protocolVersion']),
      capabilities: (r['capabilities'] as Record<string, unknown>) ?? {},
      serverInfo: (r['serverInfo'] as Record<string, unknown>) ?? {},
      ...(typeof r['instructions'] === 'string' ? { instructions: r['instructions'] } : {}),
    };
    this.#lastError = undefined;
    this.#channel.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
    for (const w of this.#waiters.splice(0)) w.resolve(this.#info);
    this.#log.info({ server: this.#name, protocolVersion: this.#info.protocolVersion }, 'upstream ready');
    // A restarted server may offer different tools; clients should look again.
    if (restarted) this.broadcast('notifications/tools/list_changed');
  }

  #upstreamStopped(reason: string): void {
    this.#info = undefined;
    this.#initId = undefined;
    this.#lastError = reason;
    for (const [key, pending] of [...this.#pending]) {
      this.#settle(key);
      void this.#deliver(pending.session, errorResponse(pending.id, ErrorCode.upstreamUnavailable, `server ${this.#name} stopped: ${reason}`), pending.id);
    }
    this.#serverRequests.clear();
    this.#progress.clear();
  }

  /** Fails everything waiting and closes every session: their clients re-initialize elsewhere. */
  close(): void {
    for (const w of this.#waiters.splice(0)) w.reject(new Error(`server ${this.#name} is shutting down`));
    this.#upstreamStopped('shutting down');
    for (const session of [...this.#sessions]) void session.transport.close().catch(() => undefined);
  }
}

function encodeId(id: RequestId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}

function decodeId(key: string): RequestId {
  return key.startsWith('n') ? Number(key.slice(1)) : key.slice(1);
}
