import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { MessageChannel } from './channel.ts';
import type { Logger } from '../../observe/log.ts';
import type { Notification, Request, RequestId, Response } from '../../http/jsonrpc.ts';
import { ErrorCode, errorResponse, isNotification, isRequest, isResponse, progressTokenOf, resultResponse, withIds } from '../../http/jsonrpc.ts';
import type { Pending } from './request-table.ts';
import { RequestTable } from './request-table.ts';
import { EarliestTimer } from './earliest-timer.ts';
import type { UpstreamInfo } from './upstream-link.ts';
import { UpstreamLink } from './upstream-link.ts';
import type { Callee, Caller, Operation } from '../../observe/trace/telemetry.ts';
import { endRelay, failRelay, telemetry } from '../../observe/trace/telemetry.ts';

export type { UpstreamInfo } from './upstream-link.ts';

interface Session {
  readonly id: number;
  readonly transport: Transport;
  /** Who the session belongs to; server-initiated messages never cross from one user to another. */
  readonly user: string;
  capabilities: Record<string, unknown>;
  readonly subscriptions: Set<string>;
  lastActive: number;
  /** The transport's own close handler, kept when berth takes `onclose` over. */
  readonly previousClose: (() => void) | undefined;
  /** What spans say of the client: its address and protocol version. */
  readonly peer: SessionPeer;
  readonly startedAt: number;
}

/** A downstream client as telemetry describes it. */
export interface SessionPeer {
  address?: string;
  protocolVersion?: string;
  /** The caller, when the session's user key is not the caller's name (a stateless call's owner). */
  user?: string;
}

export interface MultiplexerOptions {
  readonly name: string;
  readonly channel: MessageChannel;
  readonly logger: Logger;
  readonly now?: () => number;
  /** How long a forwarded request may wait for its answer; progress notifications restart the clock. Read per request, so config changes apply. */
  readonly requestTimeoutMs?: () => number;
  /** How long a request arriving while the upstream starts waits for it. */
  readonly readyWaitMs?: number;
  /** The upstream as spans describe it; read per traced request, as the transport may be known only once connected. */
  readonly callee?: () => Callee;
}

const BROADCAST = new Set([
  'notifications/tools/list_changed',
  'notifications/resources/list_changed',
  'notifications/prompts/list_changed',
]);
const CLIENT_CAPABILITY_FOR: Readonly<Record<string, string>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};
const LIST_CHANGED = ['notifications/tools/list_changed', 'notifications/prompts/list_changed', 'notifications/resources/list_changed'];
export const DEFAULT_REQUEST_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_READY_WAIT_MS = 30_000;

/**
 * Serves many downstream MCP sessions from one upstream MCP connection.
 * berth initializes the upstream once (again after each restart) and answers
 * downstream `initialize` itself; request ids and progress tokens are
 * rewritten so sessions cannot collide; responses, progress and cancellations
 * find their way back; server-initiated requests go to the session whose
 * request is in flight (the one that caused them), list_changed
 * notifications go to everyone, log messages only to the sessions of the user
 * whose request is running (they may quote that user's data), resource
 * updates to subscribers.
 */
export class Multiplexer {
  readonly #name: string;
  readonly #channel: MessageChannel;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #requestTimeoutMs: () => number;
  readonly #readyWaitMs: number;
  readonly #callee: () => Callee;
  /** When the upstream session began, for its duration. */
  #upstreamSince: number | undefined;
  readonly #sessions = new Set<Session>();
  readonly #requests = new RequestTable<Session>();
  readonly #link: UpstreamLink;
  #nextSession = 1;
  #drained: (() => void) | undefined;
  /** The one timer behind every request's deadline. */
  readonly #deadlines: EarliestTimer;

  constructor(options: MultiplexerOptions) {
    this.#name = options.name;
    this.#channel = options.channel;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? (() => DEFAULT_REQUEST_TIMEOUT_MS);
    this.#readyWaitMs = options.readyWaitMs ?? DEFAULT_READY_WAIT_MS;
    this.#callee = options.callee ?? (() => ({ server: this.#name, transport: 'pipe' }));
    this.#deadlines = new EarliestTimer(this.#now, (now) => this.#expire(now));
    // A restarted server may offer different tools; clients should look again.
    this.#link = new UpstreamLink({
      name: this.#name,
      channel: this.#channel,
      logger: this.#log,
      onReady: (restarted) => {
        this.#upstreamSince = Date.now();
        if (restarted) this.broadcast('notifications/tools/list_changed');
      },
    });
    this.#channel.onMessage((m) => this.#fromUpstream(m));
    this.#channel.onStop((reason) => this.#upstreamStopped(reason));
  }

  /** The upstream's initialize result once ready; waits (bounded by the signal) while it starts. */
  ready(signal: AbortSignal): Promise<UpstreamInfo> {
    return this.#link.ready(signal);
  }

  /** Makes callers fail at once with the reason while the upstream is known to be failing. */
  fail(reason: string): void {
    this.#link.fail(reason);
  }

  get info(): UpstreamInfo | undefined {
    return this.#link.info;
  }

  get lastError(): string | undefined {
    return this.#link.lastError;
  }

  /** Why the upstream is known to be failing (crash loop, startup timeout) until it next initializes. */
  get failing(): string | undefined {
    return this.#link.failing;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Requests forwarded upstream and not yet answered. */
  get pendingCount(): number {
    return this.#requests.size;
  }

  /** When any session last did something; for idle shutdown of per-user instances. */
  lastActivity(): number {
    let last = 0;
    for (const s of this.#sessions) last = Math.max(last, s.lastActive);
    return last;
  }

  /**
   * Connects a downstream transport (a streamable HTTP or SSE session) of
   * `user`. The transport's own `onclose` detaches it. Session clients
   * declare their capabilities in `initialize`; stateless ones per request,
   * given here.
   */
  attach(transport: Transport, user: string, capabilities: Record<string, unknown> = {}, peer: SessionPeer = {}): void {
    const session: Session = { id: this.#nextSession++, transport, user, capabilities, subscriptions: new Set(), lastActive: this.#now(), previousClose: transport.onclose, peer, startedAt: Date.now() };
    this.#adopt(session);
  }

  /**
   * Moves every session to another multiplexer (the replacement of this
   * server) and tells their clients to list again. New requests go to the
   * heir; answers to requests already in flight here still reach their
   * sessions, so call `drain` before closing this one.
   */
  handOver(to: Multiplexer): void {
    for (const session of [...this.#sessions]) {
      this.#sessions.delete(session);
      to.#adopt(session);
    }
    for (const method of LIST_CHANGED) to.broadcast(method);
  }

  /** Resolves once no request is in flight, or when the signal aborts. */
  drain(signal: AbortSignal): Promise<void> {
    if (this.#requests.size === 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        this.#drained = undefined;
        resolve();
      };
      this.#drained = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #adopt(session: Session): void {
    this.#sessions.add(session);
    session.transport.onmessage = (message, extra) => this.#fromDownstream(session, message, extra?.requestInfo?.headers);
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
    const tel = telemetry();
    if (tel.on && session.transport.sessionId !== undefined) tel.sessionEnded('server', session.startedAt, { transport: 'tcp', ...(session.peer.protocolVersion === undefined ? {} : { protocolVersion: session.peer.protocolVersion }) });
    const { requests, serverRequests } = this.#requests.dropSession(session);
    for (const r of [...requests, ...serverRequests]) failRelay(r.trace, 'client_disconnected', 'client disconnected');
    // The client is gone: tell the upstream to stop working on its behalf.
    for (const p of requests) this.#channel.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: p.upstreamId, reason: 'client disconnected' } } as JSONRPCMessage);
    for (const r of serverRequests) this.#channel.send(errorResponse(r.upstreamId, ErrorCode.internalError, 'client disconnected'));
    this.#checkDrained();
  }

  #fromDownstream(session: Session, message: unknown, headers?: Caller['headers']): void {
    session.lastActive = this.#now();
    if (isRequest(message)) {
      this.#downstreamRequest(session, message, headers);
    } else if (isResponse(message)) {
      const pending = this.#requests.takeServerRequest(message.id, session);
      endRelay(pending?.trace, message);
      if (pending !== undefined) this.#channel.send({ ...message, id: pending.upstreamId } as JSONRPCMessage);
    } else if (isNotification(message)) {
      this.#downstreamNotification(session, message);
    }
  }

  /** Forwards a request in the tick it arrived: no promise unless the upstream is still starting. */
  #downstreamRequest(session: Session, request: Request, headers?: Caller['headers']): void {
    const tel = telemetry();
    const received = tel.on ? tel.received(request, this.#caller(session, headers)) : undefined;
    switch (request.method) {
      case 'initialize':
        void this.#answerInitialize(session, request, received);
        return;
      case 'ping':
        void this.#reply(session, resultResponse(request.id, {}), received);
        return;
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
    if (this.#link.info === undefined) {
      void this.#forwardWhenReady(session, request, received);
      return;
    }
    this.#forward(session, request, received);
  }

  async #forwardWhenReady(session: Session, request: Request, received: Operation | undefined): Promise<void> {
    try {
      await this.#link.ready(AbortSignal.timeout(this.#readyWaitMs));
    } catch (err) {
      return this.#reply(session, errorResponse(request.id, ErrorCode.upstreamUnavailable, (err as Error).message), received);
    }
    this.#forward(session, request, received);
  }

  #forward(session: Session, request: Request, received: Operation | undefined): void {
    const pending = this.#requests.track(session, request.id, request.method, progressTokenOf(request));
    this.#arm(pending);
    let message = withIds(request, pending.upstreamId, pending.progressToken);
    const tel = telemetry();
    if (tel.on) {
      const sent = tel.send(message, received, { ...this.#callee(), ...(this.#link.info === undefined ? {} : { protocolVersion: this.#link.info.protocolVersion }) });
      message = sent.request;
      pending.trace = { received, sent: sent.op };
    }
    if (!this.#channel.send(message as JSONRPCMessage)) {
      this.#requests.settle(pending.upstreamId);
      failRelay(pending.trace, 'upstream_unavailable', `server ${this.#name} is not running`);
      void this.#deliver(session, errorResponse(request.id, ErrorCode.upstreamUnavailable, `server ${this.#name} is not running`), request.id);
    }
  }

  /** Answers a request berth serves itself (or could not forward), ending its span. */
  #reply(session: Session, response: JSONRPCMessage, received: Operation | undefined): Promise<void> {
    received?.end(response);
    return this.#deliver(session, response, (response as Response).id);
  }

  /** The client of a session as spans describe it. */
  #caller(session: Session, headers: Caller['headers']): Caller {
    const { address, protocolVersion, user } = session.peer;
    const sessionId = session.transport.sessionId;
    return {
      server: this.#callee().server,
      user: user ?? session.user,
      ...(sessionId === undefined ? {} : { sessionId }),
      ...(protocolVersion === undefined ? {} : { protocolVersion }),
      ...(address === undefined ? {} : { address }),
      ...(headers === undefined ? {} : { headers }),
    };
  }

  /**
   * (Re)starts a request's deadline: a request the server dropped must not
   * wait forever. One timer serves every request, armed for the earliest
   * deadline; a request costs a clock read, not a timer of its own.
   */
  #arm(pending: Pending<Session>): void {
    pending.timeoutMs = this.#requestTimeoutMs();
    pending.deadline = this.#now() + pending.timeoutMs;
    this.#deadlines.atLatest(pending.deadline);
  }

  /** Times out every request past its deadline; returns the next deadline. */
  #expire(now: number): number {
    const expired: Pending<Session>[] = [];
    let next = Infinity;
    for (const p of this.#requests.pending()) {
      if (p.deadline <= now) expired.push(p);
      else next = Math.min(next, p.deadline);
    }
    for (const p of expired) this.#timedOut(p);
    return next;
  }

  #timedOut(pending: Pending<Session>): void {
    if (this.#requests.settle(pending.upstreamId) === undefined) return;
    const timeoutMs = pending.timeoutMs;
    failRelay(pending.trace, 'timeout', `timed out after ${timeoutMs} ms`);
    this.#log.warn({ server: this.#name, method: pending.method, timeoutMs }, 'upstream request timed out');
    this.#channel.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: pending.upstreamId, reason: 'timed out' } } as JSONRPCMessage);
    const message = `server ${this.#name} did not answer ${pending.method} within ${formatSeconds(timeoutMs)}`;
    void this.#deliver(pending.session, errorResponse(pending.id, ErrorCode.requestTimeout, message), pending.id);
    this.#checkDrained();
  }

  #answerInitialize(session: Session, request: Request, received: Operation | undefined): Promise<void> {
    const params = request.params ?? {};
    session.capabilities = (params['capabilities'] as Record<string, unknown> | undefined) ?? {};
    const requested = typeof params['protocolVersion'] === 'string' ? params['protocolVersion'] : LATEST_PROTOCOL_VERSION;
    const protocolVersion = SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
    session.peer.protocolVersion = protocolVersion;
    return this.#link.ready(AbortSignal.timeout(this.#readyWaitMs)).then(
      (info) =>
        this.#reply(session, resultResponse(request.id, {
          protocolVersion,
          capabilities: info.capabilities,
          serverInfo: info.serverInfo,
          ...(info.instructions === undefined ? {} : { instructions: info.instructions }),
        }), received),
      (err: Error) => this.#reply(session, errorResponse(request.id, ErrorCode.upstreamUnavailable, err.message), received),
    );
  }

  #downstreamNotification(session: Session, notification: Notification): void {
    switch (notification.method) {
      case 'notifications/initialized':
        return; // the upstream was initialized by berth, once
      case 'notifications/cancelled': {
        const requestId = notification.params?.['requestId'];
        for (const p of [...this.#requests.pending()]) {
          if (p.session !== session || p.id !== requestId) continue;
          this.#requests.settle(p.upstreamId);
          failRelay(p.trace, 'cancelled', 'cancelled by the client');
          this.#channel.send({ ...notification, params: { ...notification.params, requestId: p.upstreamId } } as JSONRPCMessage);
        }
        this.#checkDrained();
        return;
      }
      default:
        // Includes progress on server-initiated requests: those carry the upstream's own token.
        this.#channel.send(notification as JSONRPCMessage);
    }
  }

  #fromUpstream(message: unknown): void {
    if (isResponse(message)) {
      if (this.#link.takeResponse(message)) return;
      this.#answer(message);
    } else if (isRequest(message)) {
      this.#upstreamRequest(message);
    } else if (isNotification(message)) {
      this.#upstreamNotification(message);
    }
  }

  #answer(message: Response): void {
    const pending = this.#requests.get(message.id);
    if (pending === undefined) return; // cancelled, timed out or from before a restart
    this.#requests.settle(pending.upstreamId);
    endRelay(pending.trace, message);
    void this.#deliver(pending.session, { ...message, id: pending.id } as JSONRPCMessage, pending.id);
    this.#checkDrained();
  }

  #upstreamRequest(request: Request): void {
    if (request.method === 'ping') {
      this.#channel.send(resultResponse(request.id, {}));
      return;
    }
    const target = this.#causingSession();
    const capability = CLIENT_CAPABILITY_FOR[request.method];
    if (target.kind !== 'one' || (capability !== undefined && target.session.capabilities[capability] === undefined)) {
      const why = target.kind === 'one' ? `the client does not support ${capability}` : target.kind === 'none' ? 'no client is connected' : 'several users have requests in flight, so berth cannot tell whose request it belongs to';
      this.#channel.send(errorResponse(request.id, ErrorCode.methodNotFound, `berth cannot forward ${request.method}: ${why}`));
      return;
    }
    const entry = this.#requests.trackServerRequest(target.session, request.id);
    let message: Request = { ...request, id: entry.downstreamId };
    const tel = telemetry();
    if (tel.on) {
      // berth serves the upstream's request by asking the client: a SERVER span, then a CLIENT one.
      const callee = this.#callee();
      const received = tel.received(request, { server: callee.server, transport: callee.transport });
      const { sessionId } = target.session.transport;
      const sent = tel.send(message, received, { server: callee.server, transport: 'tcp', ...(sessionId === undefined ? {} : { sessionId }) });
      message = sent.request;
      entry.trace = { received, sent: sent.op };
    }
    void this.#deliver(target.session, message as JSONRPCMessage, this.#requests.newestOf(target.session)?.id);
  }

  /**
   * The session a server-initiated message belongs to: the one whose request
   * is in flight (the newest, when one user has several), or with nothing in
   * flight the most recently active one. Ambiguous when the candidates belong
   * to more than one user: berth refuses rather than guess across users.
   */
  #causingSession(): { kind: 'one'; session: Session } | { kind: 'none' } | { kind: 'ambiguous' } {
    const inFlight = new Set<Session>();
    for (const p of this.#requests.pending()) if (this.#sessions.has(p.session)) inFlight.add(p.session);
    const candidates = inFlight.size > 0 ? [...inFlight] : [...this.#sessions];
    if (candidates.length === 0) return { kind: 'none' };
    if (new Set(candidates.map((c) => c.user)).size > 1) return { kind: 'ambiguous' };
    const newest = this.#requests.newest()?.session;
    const session = newest !== undefined && inFlight.has(newest) ? newest : candidates.reduce((a, b) => (b.lastActive > a.lastActive ? b : a));
    return { kind: 'one', session };
  }

  #upstreamNotification(notification: Notification): void {
    const method = notification.method;
    if (method === 'notifications/progress') {
      const target = this.#requests.progressTarget(notification.params?.['progressToken']);
      if (target === undefined) return;
      const pending = this.#requests.get(target.upstreamId);
      if (pending !== undefined) this.#arm(pending);
      void this.#deliver(target.session, { ...notification, params: { ...notification.params, progressToken: target.token } } as JSONRPCMessage, target.related);
    } else if (method === 'notifications/cancelled') {
      const requestId = notification.params?.['requestId'];
      for (const [downstreamId, r] of [...this.#requests.serverRequestsFor(requestId)]) {
        this.#requests.takeServerRequest(downstreamId, 'upstream');
        void this.#deliver(r.session, { ...notification, params: { ...notification.params, requestId: downstreamId } } as JSONRPCMessage);
      }
    } else if (method === 'notifications/resources/updated') {
      const uri = notification.params?.['uri'];
      for (const s of this.#sessions) if (typeof uri === 'string' && s.subscriptions.has(uri)) void this.#deliver(s, notification as JSONRPCMessage);
    } else if (method === 'notifications/message') {
      // A log line may quote a user's data: it goes to the user whose request is running, or to nobody.
      const target = this.#causingSession();
      if (target.kind !== 'one') return;
      for (const s of this.#sessions) if (s.user === target.session.user) void this.#deliver(s, notification as JSONRPCMessage);
    } else if (BROADCAST.has(method)) {
      for (const s of this.#sessions) void this.#deliver(s, notification as JSONRPCMessage);
    } else {
      this.#log.debug({ server: this.#name, method }, 'upstream notification not forwarded');
    }
  }

  #checkDrained(): void {
    if (this.#requests.size === 0) this.#drained?.();
  }

  #deliver(session: Session, message: JSONRPCMessage, relatedRequestId?: RequestId): Promise<void> {
    return session.transport.send(message, relatedRequestId === undefined ? undefined : { relatedRequestId }).catch((err: unknown) => {
      this.#log.debug({ server: this.#name, err }, 'could not deliver to client');
    });
  }

  /** The upstream went away, or (`closing`) berth ends its session on purpose, which is no error. */
  #upstreamStopped(reason: string, closing = false): void {
    const tel = telemetry();
    if (tel.on && this.#upstreamSince !== undefined) {
      const { transport, address, port } = this.#callee();
      const protocolVersion = this.#link.info?.protocolVersion;
      tel.sessionEnded('client', this.#upstreamSince, { transport, ...(closing ? {} : { errorType: 'upstream_stopped' }), ...(protocolVersion === undefined ? {} : { protocolVersion }), ...(address === undefined ? {} : { address }), ...(port === undefined ? {} : { port }) });
    }
    this.#link.stopped(reason);
    this.#upstreamSince = undefined;
    const { requests, serverRequests } = this.#requests.clear();
    for (const r of serverRequests) failRelay(r.trace, 'upstream_unavailable', reason);
    for (const pending of requests) {
      failRelay(pending.trace, 'upstream_unavailable', reason);
      void this.#deliver(pending.session, errorResponse(pending.id, ErrorCode.upstreamUnavailable, `server ${this.#name} stopped: ${reason}`), pending.id);
    }
    this.#checkDrained();
  }

  /** Fails everything waiting and closes every session: their clients re-initialize elsewhere. */
  close(): void {
    this.#deadlines.stop();
    this.#link.close();
    this.#upstreamStopped('shutting down', true);
    for (const session of [...this.#sessions]) void session.transport.close().catch(() => undefined);
  }
}

function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}
