import { Agent, request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Duplex } from 'node:stream';
import type { Identity } from '../../identity.ts';
import type { RequestContext } from '../../http/context.ts';
import { endToEndHeaders } from '../../http/hop-headers.ts';
import { baseUrl } from '../../auth/resource.ts';
import type { Missing } from '../../credentials/missing.ts';
import { browserUrlOf, CREDENTIALS_MISSING, connectUrlOf, credentialPromptOf, missingCredentialsError, savedValueProblem, sendMissingCredentials } from '../../credentials/missing.ts';
import { ProxyError } from '../../http/proxy-error.ts';
import { readJsonBody, sendRpcError } from '../../http/json-io.ts';
import type { RequestId } from '../../http/jsonrpc.ts';
import { ErrorCode, isRequest, messageIdOf } from '../../http/jsonrpc.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, limitSseEvents, tooLargeMessage } from '../../http/message-limit.ts';
import { SseAnswers } from '../../http/sse-answers.ts';
import { SessionOwners } from './session-owners.ts';
import type { Callee } from '../../observe/trace/telemetry.ts';
import { httpCallee, telemetry } from '../../observe/trace/telemetry.ts';
import type { TracedBody } from './passthrough-trace.ts';
import { traceBody } from './passthrough-trace.ts';

/** Request headers that belong to the client's hop with berth and never go upstream. */
const STRIPPED = ['authorization', 'cookie', 'proxy-authorization', 'origin', 'x-request-id', 'x-api-key'];
/**
 * berth answers with its own request id, the one in its logs. A remote's
 * cookies would be set on berth's origin, beside berth's own (its CSRF
 * cookie): they never reach the client.
 */
const RESPONSE_DROPPED: ReadonlySet<string> = new Set(['x-request-id', 'set-cookie']);

export interface PassthroughOptions {
  readonly server: string;
  readonly url: string;
  /** Added to every upstream request (config `headers`). */
  readonly headers: Readonly<Record<string, string>>;
  readonly maxBodyBytes: number;
  /**
   * The largest answer, or event of an SSE stream, taken from the upstream. A larger declared answer gets
   * a 502; a larger SSE event is dropped (its request answered with an error); any other larger answer is cut.
   * Default 10 MiB.
   */
  readonly maxMessageBytes?: number;
  /** An upstream that has not sent response headers this long after getting a connection gets a 504; started streams run on. Default 60 s. */
  readonly headersTimeoutMs?: number;
  /** Connections to the upstream at most; further requests wait for a free one. Default 256. */
  readonly maxSockets?: number;
  /** How long a request waits for a free connection before a 503. Default 10 s. */
  readonly poolWaitMs?: number;
  /**
   * How long a session's request waits for the response headers of the
   * session's previous one. A server that answers in JSON holds its headers
   * until the result, and may need the client's next request to get there.
   * Default 2 s.
   */
  readonly orderWaitMs?: number;
  /**
   * Headers made of each caller's own credentials (they replace configured
   * and client headers of the same names). A caller without the required
   * values gets the MCP error naming the /connect page; nothing goes upstream.
   */
  readonly userHeaders?: { readonly names: readonly string[]; readonly headersFor: (user: string) => Promise<Readonly<Record<string, string>>> };
  /** listen.publicUrl: the base of the /connect link. */
  readonly publicUrl?: string;
  /**
   * berth as the caller's OAuth client towards the upstream: their token goes
   * upstream as `Authorization`; an upstream's 401 Bearer challenge (or no
   * token where one is needed) sends the client to /connect to authorize.
   */
  readonly authorization?: UpstreamAuthorization;
}

/** What the passthrough needs of berth's OAuth client. */
export interface UpstreamAuthorization {
  /** The caller's access token; undefined when none is needed yet. Fails with `authorization_required`. */
  tokenFor(identity: Identity): Promise<string | undefined>;
  /** The upstream answered 401 with this `WWW-Authenticate: Bearer …` after `sent` (or no token); `retried`: on the one retry with a fresh token. */
  challenged(identity: Identity, challenge: string, sent: string | undefined, retried: boolean): Promise<void>;
}

const DEFAULTS = { headersTimeoutMs: 60_000, maxSockets: 256, poolWaitMs: 10_000, orderWaitMs: 2_000, maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES } as const;

type Settings = Required<Omit<PassthroughOptions, 'userHeaders' | 'publicUrl' | 'authorization'>> & Pick<PassthroughOptions, 'userHeaders' | 'publicUrl' | 'authorization'>;
type Headers = Readonly<Record<string, string>>;

/**
 * Pure HTTP passthrough to a streamable-HTTP upstream: bodies stream both
 * ways unbuffered (SSE included), sessions are the upstream's own. berth
 * removes the client's credentials and the hop-by-hop headers, adds the
 * configured headers, counts body bytes, and forwards each session's requests
 * in the order it received them.
 */
export class Passthrough {
  readonly #o: Settings;
  readonly #target: URL;
  readonly #agent: Agent;
  readonly #request: typeof httpRequest;
  /** Configured headers, lower-cased so they replace a client's header of the same name. */
  readonly #configured: Readonly<Record<string, string>>;
  readonly #dropped: ReadonlySet<string>;
  /** Per session: settles once the session's newest request has its response headers or failed. */
  readonly #turns = new Map<string, Promise<void>>();
  /** Stops each request in flight; for shutdown. */
  /** Requests in flight (open streams among them): how to end each, and whose it is. */
  readonly #open = new Map<(why: EndReason) => void, Identity>();
  readonly #sessions = new SessionOwners();
  readonly #callee: Callee;
  #closed = false;

  constructor(options: PassthroughOptions) {
    this.#o = { ...DEFAULTS, ...options };
    this.#target = new URL(options.url);
    // Keep-alive to the upstream: a new connection per request would cost more than the proxying.
    const agentOptions = { keepAlive: true, maxSockets: this.#o.maxSockets };
    const https = this.#target.protocol === 'https:';
    this.#agent = https ? new HttpsAgent(agentOptions) : new Agent(agentOptions);
    this.#request = https ? httpsRequest : httpRequest;
    this.#configured = lowerCased(options.headers);
    this.#callee = { server: options.server, ...httpCallee(options.url) };
    this.#dropped = new Set([...STRIPPED, 'host', ...Object.keys(this.#configured), ...(options.userHeaders?.names ?? []).map((n) => n.toLowerCase())]);
  }

  handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    ctx.method = req.method ?? 'unknown';
    if (this.#closed) {
      refuseClosing(res, this.#o.server);
      return Promise.resolve();
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > this.#o.maxBodyBytes) {
      sendRpcError(res, 413, ErrorCode.invalidRequest, `request body over ${this.#o.maxBodyBytes} bytes`, { connection: 'close' });
      return Promise.resolve();
    }
    const session = req.headers['mcp-session-id'];
    if (typeof session === 'string' && !this.#sessions.owns(session, ctx.user)) {
      // Another caller's session, or one berth never saw opened: the same answer as an expired one.
      sendRpcError(res, 404, -32001, 'Session not found: it expired or was closed; initialize a new one');
      return Promise.resolve();
    }
    const tel = telemetry();
    if (tel.on && req.method === 'POST') {
      // Traced, the body is read whole: its requests' `_meta` carries berth's spans upstream.
      return readJsonBody(req, this.#o.maxBodyBytes).then((body) => {
        if (!body.ok) return sendRpcError(res, body.status, body.code, body.message);
        return this.#route(req, res, ctx, traceBody(tel, body.value, req, ctx, this.#callee));
      });
    }
    return this.#route(req, res, ctx, undefined);
  }

  #route(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, traced: TracedBody | undefined): Promise<void> {
    const { userHeaders, authorization } = this.#o;
    if (userHeaders === undefined && authorization === undefined) return this.#queue(req, res, ctx, {}, traced);
    return Promise.all([userHeaders?.headersFor(ctx.user), authorization?.tokenFor(ctx.identity)]).then(
      ([headers = {}, token]) => this.#queue(req, res, ctx, token === undefined ? headers : { ...headers, authorization: `Bearer ${token}` }, traced),
      (err: unknown) => {
        traced?.fail('credentials_missing', 'credentials missing');
        return this.#refuse(req, res, ctx, err, traced);
      },
    );
  }

  /** Forwards a request once its session's previous one has its answer's headers. */
  #queue(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, headers: Headers, traced: TracedBody | undefined): Promise<void> {
    return new Promise((resolve) => {
      res.once('close', resolve);
      const session = req.headers['mcp-session-id'];
      const turn = typeof session === 'string' ? this.#takeTurn(session) : undefined;
      if (turn?.previous === undefined) return this.#forward(req, res, ctx, headers, turn?.done ?? noop, traced);
      void waitTurn(turn.previous, this.#o.orderWaitMs, ctx.signal).then(() => {
        if (ctx.signal.aborted) return turn.done();
        this.#forward(req, res, ctx, headers, turn.done, traced);
      });
    });
  }

  /** The caller's headers could not be made: missing credentials get the MCP error naming /connect, in-band. */
  async #refuse(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, err: unknown, traced: TracedBody | undefined): Promise<void> {
    const server = this.#o.server;
    if (!(err instanceof ProxyError)) {
      ctx.log.error({ server, err }, 'reading the caller\'s credentials failed');
      return sendRpcError(res, 500, ErrorCode.internalError, savedValueProblem(err) ?? `internal error (request ${ctx.requestId})`);
    }
    if (err.missing === undefined) return sendRpcError(res, err.status, err.rpcCode, err.message);
    if (req.method !== 'POST') return this.#sendMissing(req, res, ctx, err.missing, undefined);
    // A traced body was read already.
    const body = traced === undefined ? await readJsonBody(req, this.#o.maxBodyBytes) : ({ ok: true, value: JSON.parse(traced.body.toString('utf8')) as unknown } as const);
    if (!body.ok) return sendRpcError(res, body.status, body.code, body.message);
    this.#sendMissing(req, res, ctx, err.missing, body.value);
  }

  /** Sends the client to /connect: in-band for a request (its body given), as a plain error for a stream or a session's end. */
  #sendMissing(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, missing: Missing, body: unknown): void {
    ctx.log.info({ server: this.#o.server, missing: missing.names, authorization: missing.authorization === true }, 'credentials missing; client sent to /connect');
    const connectUrl = connectUrlOf(baseUrl(this.#o.publicUrl, req), missing.server);
    const browserUrl = browserUrlOf(connectUrl, missing.server, ctx.identity);
    if (req.method !== 'POST') {
      // There is no request to answer, only the HTTP exchange.
      const answer = missingCredentialsError(missing, connectUrl, 'message', browserUrl);
      return sendRpcError(res, 403, CREDENTIALS_MISSING, answer.kind === 'error' ? answer.error.message : `open ${connectUrl}`);
    }
    const message = Array.isArray(body) ? body[0] : body;
    sendMissingCredentials(res, isRequest(message) ? message.id : null, missing, connectUrl, credentialPromptOf(message), browserUrl);
  }

  /**
   * The upstream wants a (new) token: berth notes the challenge, once the
   * whole request body is in. A refused token berth sent may only be spent:
   * with `retry`, a fresh one (one refresh for all concurrent callers) sends
   * the request once more. Otherwise the client is answered in-band.
   */
  #askAuthorization(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, challenge: string, sent: string | undefined, body: Promise<Buffer | undefined>, retry: ((token: string, body: Buffer) => void) | undefined): void {
    const authorization = this.#o.authorization;
    if (authorization === undefined) return;
    const missing: Missing = { server: this.#o.server, names: [], authorization: true };
    void Promise.all([authorization.challenged(ctx.identity, challenge, sent, retry === undefined).catch((err: unknown) => ctx.log.warn({ err }, 'recording the upstream challenge failed')), body]).then(async ([, raw]) => {
      const fresh = retry === undefined || sent === undefined || raw === undefined ? undefined : await authorization.tokenFor(ctx.identity).catch(() => undefined);
      if (res.destroyed || res.writableEnded) return;
      if (fresh !== undefined && fresh !== sent && raw !== undefined && retry !== undefined) {
        ctx.log.info({ server: this.#o.server }, 'upstream refused the token; sending the request again with a refreshed one');
        return retry(fresh, raw);
      }
      let parsed: unknown;
      try {
        parsed = raw === undefined ? undefined : JSON.parse(raw.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      this.#sendMissing(req, res, ctx, missing, parsed);
    });
  }

  /** Ends every request in flight (open streams end cleanly) and drops kept-alive connections. */
  close(): void {
    this.#closed = true;
    for (const stop of [...this.#open.keys()]) stop('closing');
    this.#agent.destroy();
  }

  /** Ends the requests in flight, open streams included, of callers `admitted` no longer admits; returns how many. */
  revoke(admitted: (identity: Identity) => boolean): number {
    let ended = 0;
    for (const [stop, identity] of [...this.#open]) {
      if (admitted(identity)) continue;
      stop('revoked');
      ended++;
    }
    return ended;
  }

  /** Binds a session the upstream opened to its caller; forgets one it ended or no longer knows. */
  #noteSession(req: IncomingMessage, upRes: IncomingMessage, owner: string): void {
    const asked = req.headers['mcp-session-id'];
    const status = upRes.statusCode ?? 0;
    if (typeof asked === 'string') {
      if (status === 404 || (req.method === 'DELETE' && status >= 200 && status < 300)) this.#sessions.forget(asked);
      return;
    }
    const opened = upRes.headers['mcp-session-id'];
    if (typeof opened === 'string' && opened !== '') this.#sessions.bind(opened, owner);
  }

  /** Queues a request behind its session's previous one; `done` lets the next one go. */
  #takeTurn(session: string): { previous: Promise<void> | undefined; done: () => void } {
    const previous = this.#turns.get(session);
    let settle = noop;
    const mine = new Promise<void>((resolve) => (settle = resolve));
    this.#turns.set(session, mine);
    const done = (): void => {
      settle();
      if (this.#turns.get(session) === mine) this.#turns.delete(session);
    };
    return { previous, done };
  }

  /**
   * Sends one request upstream and its answer back. Every way it can end
   * (answered, refused, timed out, client gone, shutdown) goes through
   * `finish`, which lets the session's next request go; nothing here throws
   * out of an event handler, so one request's failure ends that request alone.
   */
  #forward(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, userHeaders: Headers, done: () => void, traced: TracedBody | undefined, again?: Buffer): void {
    if (this.#closed) {
      done();
      traced?.fail('upstream_closed', 'shutting down');
      refuseClosing(res, this.#o.server);
      return;
    }
    const { server, maxBodyBytes } = this.#o;
    let up: ClientRequest | undefined;
    let answer: IncomingMessage | undefined;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    /** The whole request body once it is in: read already (traced, or sent again), or kept as it streams (below). */
    let body: Promise<Buffer | undefined> = Promise.resolve(traced?.body ?? again);
    /** The body's first and last bytes: enough to read the id of the request an SSE answer answers. */
    const edges = new BodyEdges();
    const finish = (): boolean => {
      if (finished) return false;
      finished = true;
      clearTimeout(timer);
      this.#open.delete(shutdown);
      done();
      return true;
    };
    /** Ends the request with an error of berth's: a JSON-RPC error, or a cut stream once the answer has started. */
    const fail = (status: number, code: number, logMessage: string, message: string, fields: Record<string, unknown> = {}): void => {
      answer?.destroy();
      up?.destroy();
      if (!finish()) return;
      traced?.fail(String(status), message);
      ctx.log.warn({ server, status, ...fields }, logMessage);
      if (!res.destroyed && !res.writableEnded) sendRpcError(res, status, code, message, status === 413 ? { connection: 'close' } : {});
    };
    const shutdown = (why: EndReason): void => {
      answer?.destroy();
      up?.destroy();
      if (!finish()) return;
      traced?.fail(why, `request ended: ${why}`);
      // The client's connection goes too: berth is going away, or this caller may no longer be served.
      if (res.headersSent) res.end(() => res.socket?.destroy());
      else if (why === 'revoked') sendRpcError(res, 403, -32000, `Forbidden: user ${ctx.identity.user} may no longer use server ${server}`, { connection: 'close' });
      else refuseClosing(res, server);
    };
    const guard = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A): void => {
      try {
        fn(...args);
      } catch (err) {
        fail(502, ErrorCode.upstreamUnavailable, 'upstream request failed', `upstream of ${server} failed`, { err: (err as Error).message });
      }
    };
    this.#open.set(shutdown, ctx.identity);
    // The client went away: whatever the upstream is doing for it stops now, and its connection goes back to the pool.
    res.once('close', () => {
      const left = !res.writableFinished;
      if (!finish() || !left) return;
      traced?.fail('client_disconnected', 'client left');
      answer?.destroy();
      up?.destroy();
      ctx.log.debug({ server }, 'client left; upstream request aborted');
    });
    res.on('error', noop);
    guard(() => {
      const headers: OutgoingHttpHeaders = { ...endToEndHeaders(req.headers, this.#dropped), ...this.#configured, ...lowerCased(userHeaders), host: this.#target.host, ...traced?.headers };
      // A body without a length keeps its framing; anything else goes as the client sent it. A traced body was rewritten.
      if (traced !== undefined) headers['content-length'] = traced.body.length;
      else if (again !== undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = again.length;
      else if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] !== undefined) headers['transfer-encoding'] = 'chunked';
      up = this.#request(this.#target, { method: req.method, headers, agent: this.#agent });
    })();
    if (up === undefined) return;
    const upstream = up;
    upstream.on('error', (err: NodeJS.ErrnoException) =>
      fail(502, ErrorCode.upstreamUnavailable, 'upstream request failed', `upstream of ${server} failed: ${err.message}`, { err: err.message, code: err.code }),
    );
    if (isQueued(this.#agent, upstream)) {
      ctx.log.warn({ server, maxSockets: this.#o.maxSockets, waitMs: this.#o.poolWaitMs }, 'upstream connection pool full; request waits');
      const message = `upstream of ${server} is busy: all ${this.#o.maxSockets} connections stayed in use for ${this.#o.poolWaitMs} ms`;
      timer = setTimeout(() => fail(503, ErrorCode.upstreamUnavailable, 'upstream connection pool full; request refused', message), this.#o.poolWaitMs).unref();
    }
    upstream.once('socket', () => {
      clearTimeout(timer);
      if (finished) return;
      const message = `upstream of ${server} sent no answer within ${this.#o.headersTimeoutMs} ms`;
      timer = setTimeout(() => fail(504, ErrorCode.upstreamUnavailable, 'upstream answer overdue', message), this.#o.headersTimeoutMs).unref();
    });
    upstream.once('response', guard((upRes: IncomingMessage) => {
      answer = upRes;
      clearTimeout(timer);
      done();
      upRes.on('error', noop);
      // An upstream that drops a started answer cuts the client's too, so the client knows it is incomplete.
      upRes.once('close', () => {
        if (!upRes.complete) res.destroy();
      });
      if (finished) return void upRes.destroy();
      const challenge = upRes.headers['www-authenticate'];
      if (this.#o.authorization !== undefined && typeof challenge === 'string' && isAuthorizationChallenge(upRes.statusCode, challenge)) {
        // The upstream's challenge is berth's to answer, never the client's: it would send the client's own token.
        upRes.resume();
        finish();
        // A 401 spends the token sent; a 403 insufficient_scope (step-up) keeps it until the user authorizes the wider scope.
        const sent = upRes.statusCode === 401 ? userHeaders.authorization?.slice('Bearer '.length) : undefined;
        // Once only: the request sent again with a fresh token stands by its answer.
        const retry = again === undefined ? (token: string, raw: Buffer): void => this.#forward(req, res, ctx, { ...userHeaders, authorization: `Bearer ${token}` }, noop, traced, raw) : undefined;
        return this.#askAuthorization(req, res, ctx, challenge, sent, body, retry);
      }
      this.#noteSession(req, upRes, ctx.user);
      const limit = this.#o.maxMessageBytes;
      const sse = upRes.headers['content-type']?.startsWith('text/event-stream') === true;
      if (!sse && Number(upRes.headers['content-length'] ?? 0) > limit) {
        return fail(502, ErrorCode.internalError, 'upstream message too large', `upstream of ${server} failed: ${tooLargeMessage(limit)}`, { limitBytes: limit });
      }
      traced?.watch(upRes, limit);
      res.writeHead(upRes.statusCode ?? 502, endToEndHeaders(upRes.headers, RESPONSE_DROPPED));
      if (sse) {
        // A stream's headers go out now, not with its first event; each event is bounded, the stream goes on.
        res.flushHeaders();
        const dropped = (id: string | number | undefined): void => ctx.log.warn({ server, limitBytes: limit, id }, 'upstream message too large; dropped');
        // An event of a POST's answer that the client could not read fails the request now, not at the client's deadline.

        const unusable = (reason: string): string => {
          ctx.log.warn({ server, err: reason }, 'upstream answer unusable');
          return `server ${server} sent an unusable answer: ${reason}`;
        };
        const answers = req.method === 'POST' ? new SseAnswers(edges.requestIds(), unusable) : undefined;
        upRes.pipe(Duplex.fromWeb(limitSseEvents(limit, dropped, answers))).pipe(res);
        return;
      }
      // An answer without a declared length is counted as it goes; past the limit the client's is cut, so it knows.
      let size = 0;
      upRes.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= limit) return;
        ctx.log.warn({ server, limitBytes: limit }, 'upstream message too large; cut');
        upRes.destroy();
      });
      upRes.pipe(res);
    }));

    const whole = traced?.body ?? again;
    if (whole !== undefined) {
      edges.add(whole);
      upstream.end(whole);
      return;
    }
    let size = 0;
    // Kept only where an upstream may ask for authorization: its 401 is answered in-band, with the request's id, or the request sent again.
    const kept: Buffer[] | undefined = this.#o.authorization === undefined ? undefined : [];
    body = kept === undefined ? Promise.resolve(undefined) : new Promise<Buffer | undefined>((resolve) => {
      req.once('end', () => resolve(Buffer.concat(kept)));
      req.once('close', () => resolve(req.complete ? Buffer.concat(kept) : undefined));
    });
    const onData = guard((chunk: Buffer) => {
      size += chunk.length;
      kept?.push(chunk);
      edges.add(chunk);
      if (size > maxBodyBytes) {
        req.off('data', onData);
        req.resume();
        return fail(413, ErrorCode.invalidRequest, 'request body over the limit', `request body over ${maxBodyBytes} bytes`);
      }
      if (!upstream.write(chunk)) req.pause();
    });
    req.on('data', onData);
    req.on('error', noop);
    upstream.on('drain', () => req.resume());
    req.once('end', () => {
      if (size <= maxBodyBytes) upstream.end();
    });
  }
}

const EDGE_BYTES = 256;
/** A body up to this size is kept whole, so the ids of its requests are read wherever they stand. */
const WHOLE_BYTES = 16 * 1024;

/** What berth needs of a request body as it streams by: the ids it asks; small bodies whole, larger ones by their edges. */
class BodyEdges {
  #head = Buffer.alloc(0);
  #tail = Buffer.alloc(0);
  #whole: Buffer[] | undefined = [];
  #size = 0;

  add(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > WHOLE_BYTES) this.#whole = undefined;
    else this.#whole?.push(chunk);
    if (this.#head.length < EDGE_BYTES) this.#head = Buffer.concat([this.#head, chunk.subarray(0, EDGE_BYTES)]).subarray(0, EDGE_BYTES);
    this.#tail = chunk.length >= EDGE_BYTES ? Buffer.from(chunk.subarray(-EDGE_BYTES)) : Buffer.concat([this.#tail, chunk]).subarray(-EDGE_BYTES);
  }

  /** The ids of the requests the body holds (a batch's too); of a large body only an id that is its first or last key. */
  requestIds(): RequestId[] {
    if (this.#whole !== undefined) return requestIdsOf(Buffer.concat(this.#whole).toString('utf8'));
    const id = messageIdOf(this.#head.toString('utf8'), this.#tail.toString('utf8'));
    return id === undefined ? [] : [id];
  }
}

function requestIdsOf(text: string): RequestId[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  const isRequest = (m: unknown): m is { method: string; id: RequestId } => typeof m === 'object' && m !== null && typeof (m as { method?: unknown }).method === 'string' && ['string', 'number'].includes(typeof (m as { id?: unknown }).id);
  return (Array.isArray(parsed) ? parsed : [parsed]).filter(isRequest).map((m) => m.id);
}

/** Why berth ends a request in flight: it shuts the route down, or a reload no longer admits the caller. */
type EndReason = 'closing' | 'revoked';

function noop(): void {}

/** A Bearer challenge berth answers by asking the user to authorize: a 401, or a 403 `insufficient_scope` (step-up). */
function isAuthorizationChallenge(status: number | undefined, challenge: string): boolean {
  if (!/^\s*bearer\b/i.test(challenge)) return false;
  return status === 401 || (status === 403 && /\berror\s*=\s*"?insufficient_scope\b/i.test(challenge));
}

/** Header names lower-cased, so that one replaces another of the same name instead of both being sent. */
function lowerCased(headers: Headers): Headers {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

function refuseClosing(res: ServerResponse, server: string): void {
  sendRpcError(res, 503, ErrorCode.upstreamUnavailable, `server ${server} is shutting down`, { connection: 'close', 'retry-after': '5' });
}

/** Resolves when the previous request's turn is over, after `ms` at most, or when the client leaves. */
function waitTurn(previous: Promise<void>, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const go = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', go);
      resolve();
    };
    const timer = setTimeout(go, ms).unref();
    signal.addEventListener('abort', go, { once: true });
    void previous.then(go);
  });
}

/** True while the agent holds the request back because every connection is busy. */
function isQueued(agent: Agent, request: ClientRequest): boolean {
  for (const name in agent.requests) if (agent.requests[name]?.includes(request) === true) return true;
  return false;
}
