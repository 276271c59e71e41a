import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Identity } from '../../identity.ts';
import type { Logger } from '../../observe/log.ts';
import type { RequestContext } from '../../http/context.ts';
import { ProxyError } from '../../http/proxy-error.ts';
import { baseUrl } from '../../auth/resource.ts';
import type { CredentialPrompt } from '../../credentials/missing.ts';
import { browserUrlOf, connectUrlOf, credentialPromptOf, savedValueProblem, sendMissingCredentials } from '../../credentials/missing.ts';
import type { Refusal } from '../../http/json-io.ts';
import { accepts, isJsonContentType, readJsonBody, sendRefusal, sendRpcError } from '../../http/json-io.ts';
import type { RequestId } from '../../http/jsonrpc.ts';
import { ErrorCode, isRequest } from '../../http/jsonrpc.ts';
import type { Multiplexer, SessionPeer } from '../mux/multiplex.ts';
import { checkMessages, isInitialize, SessionTransport } from './session-transport.ts';
import { exceedsQueue } from '../../http/write-queue.ts';
import type { SessionStore } from './sessions.ts';
import { classify, MODERN_VERSIONS, serveModern } from './stateless.ts';

export interface McpEndpointOptions {
  readonly server: string;
  /** The multiplexer serving a user; starts a per-user instance on first use. Composites also read the identity (access rules of components). */
  readonly acquire: (user: string, signal: AbortSignal, identity?: Identity) => Promise<Multiplexer>;
  readonly sessions: SessionStore;
  readonly maxBodyBytes: number;
  /** Interval of SSE keep-alive comments on idle streams. */
  readonly keepAliveMs: number;
  /** listen.publicUrl: the base of the /connect links given to users with missing credentials. */
  readonly publicUrl?: string;
  /** For what happens to sessions outside any one request (a stream cut off for not keeping up). */
  readonly logger: Logger;
}

const SESSION_HEADER = 'mcp-session-id';

/**
 * Terminates MCP at berth for one server: streamable HTTP sessions (both
 * directions, GET streams, DELETE), the stateless 2026-07-28 revision, and
 * legacy HTTP+SSE, all onto the server's multiplexer.
 */
export class McpEndpoint {
  readonly #o: McpEndpointOptions;

  constructor(options: McpEndpointOptions) {
    this.#o = options;
  }

  /** The multiplexer serving `user`, e.g. for a composite that includes this server. */
  acquire(user: string, signal: AbortSignal, identity?: Identity): Promise<Multiplexer> {
    return this.#o.acquire(user, signal, identity);
  }

  async handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    switch (req.method) {
      case 'POST':
        return this.#post(req, res, ctx);
      case 'GET':
      case 'DELETE': {
        const entry = this.#session(req, res, ctx, 'streamable-http');
        if (entry === undefined) return;
        const transport = entry.transport as SessionTransport;
        return req.method === 'GET' ? transport.handleGet(req, res) : transport.handleDelete(req, res);
      }
      default:
        return sendRpcError(res, 405, -32000, `method ${req.method ?? ''} not allowed`, { allow: 'GET, POST, DELETE' });
    }
  }

  async #post(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    if (!accepts(req.headers.accept, 'application/json') || !accepts(req.headers.accept, 'text/event-stream')) {
      return sendRpcError(res, 406, -32000, 'Not Acceptable: Accept must list application/json and text/event-stream');
    }
    if (!isJsonContentType(req.headers['content-type'])) return sendRpcError(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
    const body = await readJsonBody(req, this.#o.maxBodyBytes);
    if (!body.ok) return sendRpcError(res, body.status, body.code, body.message);
    ctx.method = methodOf(body.value);
    const era = classify(req, body.value);
    if (era.era === 'invalid') return sendRefusal(res, idOf(body.value), era.refusal);
    if (era.era === 'modern') {
      const mux = await this.#acquire(req, res, ctx, { id: idOf(body.value), prompt: credentialPromptOf(era.message) });
      if (mux === undefined) return;
      // Parked calls are bound to their caller like sessions: a requestState is worthless to anyone else.
      return serveModern(res, era.message, mux, `${this.#o.server}\n${ctx.user}`, { ...peerOf(req), user: ctx.user });
    }
    const inSession = req.headers[SESSION_HEADER] !== undefined;
    const entry = inSession ? this.#session(req, res, ctx, 'streamable-http') : undefined;
    if (inSession && entry === undefined) return;
    const messages = checkMessages(body.value);
    if (!Array.isArray(messages)) return sendRefusal(res, null, messages as Refusal);
    if (entry !== undefined) return (entry.transport as SessionTransport).handlePost(req, res, messages);
    if (messages.length === 1 && isInitialize(messages[0] as JSONRPCMessage)) return this.#initialize(req, res, ctx, messages);
    if (messages.some(isInitialize)) return sendRpcError(res, 400, ErrorCode.invalidRequest, 'Invalid Request: Only one initialization request is allowed');
    return sendRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required (send initialize first)');
  }

  async #initialize(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, messages: readonly JSONRPCMessage[]): Promise<void> {
    const init = messages[0] as { id?: RequestId };
    const mux = await this.#acquire(req, res, ctx, { id: init.id ?? null, prompt: credentialPromptOf(messages[0]) });
    if (mux === undefined) return;
    const { server, sessions } = this.#o;
    const id = randomUUID();
    const transport = new SessionTransport({ sessionId: id, logger: this.#o.logger, keepAliveMs: this.#o.keepAliveMs });
    transport.onclose = () => sessions.delete(id);
    sessions.add({ id, server, identity: ctx.identity, client: ctx.client, kind: 'streamable-http', transport });
    mux.attach(transport, ctx.user, {}, peerOf(req));
    transport.handlePost(req, res, messages, true);
  }

  /** Legacy HTTP+SSE (2024-11-05): GET opens the stream, POST …/message?sessionId= sends. */
  async handleSse(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, messagePath: string): Promise<void> {
    if (req.method === 'GET') {
      const mux = await this.#acquire(req, res, ctx, { id: null, prompt: 'message' });
      if (mux === undefined) return;
      const transport = new BoundedSseTransport(messagePath, res, ctx.log);
      const { server, sessions } = this.#o;
      transport.onclose = () => sessions.delete(transport.sessionId);
      mux.attach(transport, ctx.user, {}, peerOf(req));
      await transport.start();
      // The stream is the session: in use for as long as it is open.
      res.once('close', sessions.hold(sessions.add({ id: transport.sessionId, server, identity: ctx.identity, client: ctx.client, kind: 'sse', transport })));
      const keepAlive = setInterval(() => res.writableEnded || res.write(': keep-alive\n\n'), this.#o.keepAliveMs).unref();
      res.on('close', () => clearInterval(keepAlive));
      return;
    }
    return sendRpcError(res, 405, -32000, `method ${req.method ?? ''} not allowed`, { allow: 'GET' });
  }

  async handleSseMessage(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, sessionId: string | null): Promise<void> {
    if (req.method !== 'POST') return sendRpcError(res, 405, -32000, `method ${req.method ?? ''} not allowed`, { allow: 'POST' });
    if (sessionId === null) return sendRpcError(res, 400, -32000, 'Bad Request: sessionId query parameter is required');
    const entry = this.#o.sessions.touch(sessionId, { server: this.#o.server, kind: 'sse', user: ctx.user });
    if (entry === undefined) return sendRpcError(res, 404, -32001, 'Session not found');
    const body = await readJsonBody(req, this.#o.maxBodyBytes);
    if (!body.ok) return sendRpcError(res, body.status, body.code, body.message);
    ctx.method = methodOf(body.value);
    return (entry.transport as SSEServerTransport).handlePostMessage(req, res, body.value);
  }

  /** The caller's own session on this server; 400 when missing, 404 when unknown (also for other users' sessions). */
  #session(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, kind: 'streamable-http' | 'sse') {
    const id = req.headers[SESSION_HEADER];
    if (typeof id !== 'string' || id === '') {
      // The stateless revision has no GET stream and no sessions to delete.
      const version = req.headers['mcp-protocol-version'];
      if (req.method !== 'POST' && typeof version === 'string' && MODERN_VERSIONS.includes(version)) sendRpcError(res, 405, -32000, 'Method not allowed.', { allow: 'POST' });
      else sendRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return undefined;
    }
    const entry = this.#o.sessions.touch(id, { server: this.#o.server, kind, user: ctx.user });
    if (entry === undefined) {
      sendRpcError(res, 404, -32001, 'Session not found: it expired or was closed; initialize a new one');
      return undefined;
    }
    // In use until the answer ends: a GET stream holds it for as long as it is open.
    res.once('close', this.#o.sessions.hold(entry));
    return entry;
  }

  async #acquire(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, request: { id: RequestId | null; prompt: CredentialPrompt }): Promise<Multiplexer | undefined> {
    try {
      return await this.#o.acquire(ctx.user, ctx.signal, ctx.identity);
    } catch (err) {
      if (err instanceof ProxyError && err.missing !== undefined) {
        // Answered in-band, in the form the client can act on: a link to the page where the user supplies them.
        ctx.log.info({ server: this.#o.server, missing: err.missing.names }, 'credentials missing; client sent to /connect');
        const page = connectUrlOf(baseUrl(this.#o.publicUrl, req), err.missing.server);
        sendMissingCredentials(res, request.id, err.missing, page, request.prompt, browserUrlOf(page, err.missing.server, ctx.identity));
      } else if (err instanceof ProxyError) {
        ctx.log.warn({ server: this.#o.server, code: err.code, err: err.message }, 'server unavailable');
        sendRpcError(res, err.status, err.rpcCode, err.message, err.status === 503 ? { 'retry-after': '5' } : {});
      } else {
        // A bug, not a state of the server: its message is for the log, not the client; an unreadable saved value of the caller's is told them.
        ctx.log.error({ server: this.#o.server, err }, 'acquiring the server failed unexpectedly');
        sendRpcError(res, 500, ErrorCode.internalError, savedValueProblem(err) ?? `internal error (request ${ctx.requestId})`);
      }
      return undefined;
    }
  }

}

/** Legacy SSE writes straight to the response; a client that stops reading loses the stream (legacy SSE cannot resume). */
class BoundedSseTransport extends SSEServerTransport {
  readonly #res: ServerResponse;
  readonly #log: RequestContext['log'];

  constructor(endpoint: string, res: ServerResponse, log: RequestContext['log']) {
    super(endpoint, res);
    this.#res = res;
    this.#log = log;
  }

  override async send(message: JSONRPCMessage): Promise<void> {
    if (exceedsQueue(this.#res, this.#log)) return;
    return super.send(message);
  }
}

/** The client as spans describe it. */
function peerOf(req: IncomingMessage): SessionPeer {
  return req.socket.remoteAddress === undefined ? {} : { address: req.socket.remoteAddress };
}

function idOf(value: unknown): string | number | null {
  return isRequest(value) ? value.id : null;
}

/** Methods that label metrics as themselves; anything else a client sends is `other`, keeping the label set bounded. */
const METRIC_METHODS = new Set([
  'initialize', 'ping', 'server/discover', 'tools/list', 'tools/call', 'resources/list', 'resources/read',
  'resources/templates/list', 'resources/subscribe', 'resources/unsubscribe', 'prompts/list', 'prompts/get',
  'completion/complete', 'logging/setLevel', 'notifications/initialized', 'notifications/cancelled',
  'notifications/progress', 'notifications/roots/list_changed', 'tasks/get', 'tasks/list', 'tasks/result', 'tasks/cancel',
]);

/** The JSON-RPC method of a body, for metrics: `batch` and `response` for the other shapes. */
function methodOf(value: unknown): string {
  if (Array.isArray(value)) return 'batch';
  if (typeof value === 'object' && value !== null && 'method' in value && typeof value.method === 'string') return METRIC_METHODS.has(value.method) ? value.method : 'other';
  return 'response';
}
