// An MCP server reached over HTTP (streamable HTTP or SSE) and held as one SDK
// client connection that berth multiplexes: a hosted HTTP instance (the
// pool's own connection), a user's own connection carrying their headers, and
// a remote held as a connection (SSE remotes, the bridge for legacy SSE
// clients of streamable-HTTP ones). One attempt at a time, each bounded;
// failed attempts are retried with capped, jittered backoff; a status says
// where the connection stands; close() ends everything it started.
import { AsyncLocalStorage } from 'node:async_hooks';
import { SSEClientTransport, SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { BackoffPolicy } from '../../backoff.ts';
import { backoffDelay, RECONNECT_BACKOFF } from '../../backoff.ts';
import type { MessageChannel } from '../mux/channel.ts';
import type { Logger } from '../../observe/log.ts';
import { httpCallee, telemetry } from '../../observe/trace/telemetry.ts';
import { ProxyError } from '../../http/proxy-error.ts';
import type { RequestId } from '../../http/jsonrpc.ts';
import { ErrorCode, errorResponse, isRequest, isResponse } from '../../http/jsonrpc.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, MessageTooLarge, limitBody, limitSseEvents } from '../../http/message-limit.ts';
import { SseAnswers } from '../../http/sse-answers.ts';
import { Multiplexer } from '../mux/multiplex.ts';

export interface HttpUpstreamOptions {
  /** The server (and instance or user) in logs and errors. */
  readonly name: string;
  readonly url: string;
  readonly transport: 'streamable-http' | 'sse';
  /**
   * The headers of every request of this connection, its SSE stream included.
   * Read per request: a reload's new fixed headers apply without reconnecting.
   */
  readonly headers: () => Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Bounds one attempt, from the first request to the answer to berth's initialize. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Retry delays after failed attempts (src/backoff.ts). Default 500 ms to 30 s. */
  readonly retry?: BackoffPolicy;
  /** A hosted instance refuses connections while it starts: until the first connection, failed attempts log at debug only. */
  readonly quietUntilUp?: boolean;
  /**
   * Where the server is now, asked again before each attempt that follows a failed one or a lost
   * connection: a container restarted behind berth's back listens on another host port. Without
   * it `url` holds for good.
   */
  readonly locate?: (signal: AbortSignal) => Promise<string>;
  /** The largest answer, or SSE event, berth takes from the server; a larger one fails its request alone. Default 10 MiB. */
  readonly maxMessageBytes?: number;
  /** berth as the OAuth client of this connection's user (or, for a connection of no user's, the one that notes challenges). */
  readonly authorization?: ConnectionAuthorization;
}

/**
 * What a connection needs of berth's OAuth client, bound to the connection's
 * user. The token is asked for on every request (a refreshed one goes out
 * without reconnecting); a 401 with a Bearer challenge is reported, and a
 * request refused on a token berth sent goes once more with a fresh one.
 */
export interface ConnectionAuthorization {
  /** The token to send; undefined while the server asks for none. Fails with `authorization_required`. */
  token(): Promise<string | undefined>;
  /** The server at `url` answered 401 with this `WWW-Authenticate: Bearer …` to a request that carried `sent` (or no token); `retried`: on the one retry with a fresh token. */
  challenged(url: string, challenge: string, sent: string | undefined, retried: boolean): Promise<void>;
}

/** Where a connection stands, for `/status`. */
export interface ConnectionStatus {
  readonly state: 'connecting' | 'connected' | 'down' | 'closed';
  readonly lastError?: string;
  /** The HTTP status of the last failure, when the server answered with one (401, 403, 503, …). */
  readonly httpStatus?: number;
  /** Attempts that failed in a row since the connection was last up. */
  readonly attempts: number;
  /** ISO time of the last change of state. */
  readonly since: string;
}

/** Many connections to one upstream (one per user), counted by state, for `/status`; never whose they are. */
export interface ConnectionSummary {
  readonly total: number;
  readonly connected: number;
  readonly connecting: number;
  readonly down: number;
  /** The error of the connection that went down last. */
  readonly lastError?: string;
}

export function summarizeConnections(statuses: readonly ConnectionStatus[]): ConnectionSummary {
  const count = (state: ConnectionStatus['state']): number => statuses.filter((s) => s.state === state).length;
  const lastDown = statuses.filter((s) => s.state === 'down').sort((a, b) => a.since.localeCompare(b.since)).at(-1);
  return { total: statuses.length, connected: count('connected'), connecting: count('connecting'), down: count('down'), ...(lastDown?.lastError === undefined ? {} : { lastError: lastDown.lastError }) };
}

/** The message being sent, for the fetch the SDK transport makes for it: its trace headers, and the ids its answer must answer. */
const sending = new AsyncLocalStorage<{ readonly headers: Readonly<Record<string, string>> | undefined; readonly requests: readonly RequestId[] }>();

const DEFAULTS = { connectTimeoutMs: 10_000, retry: RECONNECT_BACKOFF, maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES };

/** One attempt: its transport, what aborts its fetches, and how far it got. */
interface Attempt {
  readonly transport: Transport;
  readonly abort: AbortController;
  readonly deadline: NodeJS.Timeout;
  /** start() succeeded and the start handlers ran. */
  started: boolean;
  /** The server answered berth's first request (its initialize) with a result. */
  connected: boolean;
  /** The first request sent on this connection: its answer decides the attempt. */
  handshake: RequestId | undefined;
}

/**
 * The connection as a message channel. The first request sent after a start
 * (the multiplexer's initialize) is the handshake: a result means connected;
 * an error, an HTTP refusal, a network failure or the deadline fail the
 * attempt, and the next one starts after the backoff. A failed attempt is
 * closed whole (the SDK's EventSource would otherwise reconnect on its own).
 */
export class HttpUpstream implements MessageChannel {
  readonly #o: HttpUpstreamOptions & typeof DEFAULTS;
  readonly #handlers = { message: [] as ((m: unknown) => void)[], start: [] as (() => void)[], stop: [] as ((r: string) => void)[], status: [] as ((s: ConnectionStatus) => void)[] };
  #attempt: Attempt | undefined;
  #status: ConnectionStatus = { state: 'connecting', attempts: 0, since: new Date().toISOString() };
  #timer: NodeJS.Timeout | undefined;
  #everUp = false;
  #warned = false;
  #url: string;
  /** Set once an attempt failed or a connection was lost: the next attempt asks `locate` first. */
  #stale = false;
  /** Stops a `locate` in progress. */
  #locating: AbortController | undefined;

  constructor(options: HttpUpstreamOptions) {
    this.#o = { ...DEFAULTS, ...options };
    this.#url = options.url;
    // The next turn: whoever holds the channel registers its handlers first.
    this.#timer = setTimeout(() => this.#connect(), 0);
  }

  status(): ConnectionStatus {
    return this.#status;
  }

  /** Called on every change of status. */
  onStatus(handler: (status: ConnectionStatus) => void): void {
    this.#handlers.status.push(handler);
  }

  onMessage(handler: (message: unknown) => void): void {
    this.#handlers.message.push(handler);
  }

  onStart(handler: () => void): void {
    this.#handlers.start.push(handler);
  }

  onStop(handler: (reason: string) => void): void {
    this.#handlers.stop.push(handler);
  }

  send(message: JSONRPCMessage): boolean {
    const attempt = this.#attempt;
    if (attempt?.started !== true) return false;
    if (!attempt.connected && attempt.handshake === undefined && isRequest(message)) attempt.handshake = message.id;
    const send = (): Promise<void> => attempt.transport.send(message).catch((err: unknown) => this.#sendFailed(attempt, message, err));
    // The message's trace context goes in the HTTP headers too, for tracers that read only those.
    void sending.run({ headers: telemetry().headersOf(message), requests: isRequest(message) ? [message.id] : [] }, send);
    return true;
  }

  /**
   * Resolves once connected; waits (bounded by the signal) while connecting;
   * fails at once while down or closed. This is a remote's readiness (hence
   * `remote_unavailable`); a hosted instance's is the pool's, which also knows
   * what the backend says of it.
   */
  async connected(signal: AbortSignal): Promise<void> {
    for (;;) {
      const { state, lastError } = this.#status;
      if (state === 'connected') return;
      if (state === 'closed') throw new ProxyError('remote_unavailable', `server ${this.#o.name} is shutting down`);
      if (state === 'down') throw new ProxyError('remote_unavailable', `server ${this.#o.name} is unreachable: ${lastError ?? 'unknown error'}`);
      if (signal.aborted) throw new ProxyError('remote_unavailable', `server ${this.#o.name} is still connecting`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#handlers.status = this.#handlers.status.filter((h) => h !== wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        this.#handlers.status.push(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /** Drops the connection, or the attempt in flight, and connects again at once, asking where the server is first. */
  reconnect(reason: string): void {
    const attempt = this.#attempt;
    if (attempt !== undefined) this.#lost(attempt, reason, undefined, 0);
  }

  /** Stops everything: the retry timer, the connection and its fetches. Idempotent. */
  close(): void {
    if (this.#status.state === 'closed') return;
    clearTimeout(this.#timer);
    this.#locating?.abort();
    const attempt = this.#attempt;
    this.#attempt = undefined;
    this.#setStatus('closed', this.#status.lastError, this.#status.httpStatus);
    if (attempt === undefined) return;
    clearTimeout(attempt.deadline);
    attempt.abort.abort();
    void attempt.transport.close().catch(() => undefined);
  }

  #connect(): void {
    this.#timer = undefined;
    if (this.#status.state === 'closed') return;
    const locate = this.#o.locate;
    if (!this.#stale || locate === undefined) return this.#open();
    const locating = new AbortController();
    this.#locating = locating;
    locate(AbortSignal.any([locating.signal, AbortSignal.timeout(this.#o.connectTimeoutMs)])).then(
      (url) => {
        if (this.#locating !== locating) return;
        this.#locating = undefined;
        if (url !== this.#url) this.#o.logger.info({ server: this.#o.name, url }, 'upstream moved; connecting at its new address');
        this.#url = url;
        this.#stale = false;
        this.#open();
      },
      (err: unknown) => {
        if (this.#locating !== locating) return;
        this.#locating = undefined;
        this.#failed(false, `cannot locate the server: ${(err as Error).message}`, undefined);
      },
    );
  }

  #open(): void {
    const abort = new AbortController();
    const transport = this.#transport(abort.signal);
    const deadline = setTimeout(() => this.#lost(attempt, `no connection within ${this.#o.connectTimeoutMs} ms`), this.#o.connectTimeoutMs).unref();
    const attempt: Attempt = { transport, abort, deadline, started: false, connected: false, handshake: undefined };
    this.#attempt = attempt;
    transport.onmessage = (m) => {
      if (this.#attempt !== attempt) return;
      for (const h of this.#handlers.message) h(m);
      if (!attempt.connected && isResponse(m) && m.id === attempt.handshake) this.#answered(attempt, m.error?.message);
    };
    transport.onclose = () => this.#lost(attempt, 'connection closed');
    // The SSE stream broke: the SDK's EventSource would reconnect by itself, outside one attempt at a time.
    transport.onerror = (err) => {
      if (err instanceof SseError) this.#lost(attempt, reasonOf(err), statusOf(err));
      else this.#o.logger.debug({ server: this.#o.name, err: err.message }, 'upstream stream error');
    };
    transport.start().then(
      () => {
        if (this.#attempt !== attempt) return;
        attempt.started = true;
        for (const h of this.#handlers.start) h();
      },
      (err: unknown) => this.#lost(attempt, reasonOf(err), statusOf(err)),
    );
  }

  #transport(signal: AbortSignal): Transport {
    const url = new URL(this.#url);
    // fetch refuses a URL with credentials: they go as Basic authorization, as the passthrough sends them (configured headers win).
    const basic = url.username === '' && url.password === '' ? undefined : `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    url.username = '';
    url.password = '';
    // Every fetch of the attempt, the SSE stream's included, carries the headers and ends when the attempt is dropped.
    const fetchWith = async (input: string | URL, init?: RequestInit): Promise<Response> => {
      const headers = new Headers(init?.headers);
      if (basic !== undefined) headers.set('authorization', basic);
      for (const [name, value] of Object.entries(this.#o.headers())) headers.set(name, value);
      const message = sending.getStore();
      for (const [name, value] of Object.entries(message?.headers ?? {})) headers.set(name, value);
      const send = (): Promise<Response> => fetch(input, { ...init, headers, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });
      // Only a POST's answer answers its message's requests; the GET stream carries the server's own messages.
      const requests = init?.method === 'POST' ? (message?.requests ?? []) : [];
      const auth = this.#o.authorization;
      if (auth === undefined) return this.#bounded(await send(), requests);
      return this.#bounded(await authorized(auth, url.href, headers, send, typeof init?.body === 'string' || init?.body === undefined || init.body === null), requests);
    };
    return this.#o.transport === 'sse' ? new SSEClientTransport(url, { fetch: fetchWith, eventSourceInit: { fetch: fetchWith } }) : new StreamableHTTPClientTransport(url, { fetch: fetchWith });
  }

  /**
   * The response with its body counted: SSE event by event (an event too large is dropped and its request answered with an error), anything else whole.
   * An SSE answer to `requests` has every event checked: one a client cannot read fails its request now, not at its deadline.
   */
  #bounded(response: Response, requests: readonly RequestId[]): Response {
    if (response.body === null) return response;
    const limit = this.#o.maxMessageBytes;
    const sse = response.headers.get('content-type')?.startsWith('text/event-stream') === true;
    const dropped = (id: string | number | undefined): void => this.#o.logger.warn({ server: this.#o.name, limitBytes: limit, id }, 'upstream message too large; dropped');
    const unusable = (reason: string): string => {
      this.#o.logger.warn({ server: this.#o.name, err: reason }, 'upstream answer unusable');
      return this.#unusable(reason);
    };
    const answers = sse && requests.length > 0 ? new SseAnswers(requests, unusable) : undefined;
    const body = response.body.pipeThrough(sse ? limitSseEvents(limit, dropped, answers) : limitBody(limit));
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  /** The error's words for an answer a client cannot read. */
  #unusable(reason: string): string {
    return `server ${this.#o.name} sent an unusable answer: ${reason}`;
  }

  /** The server answered the handshake: with a result the connection is up; with an error the attempt failed. */
  #answered(attempt: Attempt, error: string | undefined): void {
    if (error !== undefined) {
      this.#lost(attempt, `initialize failed: ${error}`);
      return;
    }
    attempt.connected = true;
    clearTimeout(attempt.deadline);
    this.#everUp = true;
    this.#setStatus('connected', undefined, undefined);
    // After a warning, the all-clear.
    this.#o.logger[this.#warned ? 'info' : 'debug']({ server: this.#o.name }, 'upstream connected');
    this.#warned = false;
  }

  #sendFailed(attempt: Attempt, message: JSONRPCMessage, err: unknown): void {
    if (this.#attempt !== attempt) return;
    const status = statusOf(err);
    // Before the handshake any failure fails the attempt. After it, a lost session (404), credentials no longer
    // accepted (401) or the network end the connection; any other refusal, or an unusable answer, concerns only the message.
    const bad = isBadAnswer(err);
    const refusal = (status !== undefined && status !== 404 && status !== 401) || (err instanceof StreamableHTTPError && err.code === -1);
    if (!attempt.connected || !(refusal || bad)) {
      this.#lost(attempt, reasonOf(err), status);
      return;
    }
    this.#o.logger.warn({ server: this.#o.name, err: reasonOf(err) }, bad ? 'upstream answer unusable' : 'upstream refused a message');
    // The caller learns it now rather than at its request's deadline.
    if (isRequest(message)) {
      const answer = bad
        ? errorResponse(message.id, ErrorCode.internalError, this.#unusable(reasonOf(err)))
        : errorResponse(message.id, ErrorCode.upstreamUnavailable, `server ${this.#o.name} refused the request: ${reasonOf(err)}`);
      for (const h of this.#handlers.message) h(answer);
    }
  }

  /** Ends an attempt or connection once, whichever way it failed, and schedules the next attempt (after `delayMs` when given). */
  #lost(attempt: Attempt, reason: string, httpStatus?: number, delayMs?: number): void {
    if (this.#attempt !== attempt) return;
    this.#attempt = undefined;
    clearTimeout(attempt.deadline);
    attempt.abort.abort();
    // After the current event: the SDK's EventSource arms its own reconnect timer right after reporting an error, and closing clears it.
    queueMicrotask(() => void attempt.transport.close().catch(() => undefined));
    // The multiplexer fails requests in flight and keeps the reason for readiness errors.
    for (const h of this.#handlers.stop) h(reason);
    this.#failed(attempt.connected, reason, httpStatus, delayMs);
  }

  /** An attempt failed, or a connection that was up was lost: says so and schedules the next attempt, which first asks where the server is. */
  #failed(wasConnected: boolean, reason: string, httpStatus: number | undefined, delayMs?: number): void {
    this.#stale = true;
    const failures = wasConnected ? 0 : this.#status.attempts + 1;
    const delay = delayMs ?? backoffDelay(failures, this.#o.retry);
    // A connection that was up gets one quiet attempt (callers wait for it); a failed attempt means down.
    const state = wasConnected ? 'connecting' : 'down';
    const warn = this.#status.state !== state && (this.#everUp || this.#o.quietUntilUp !== true);
    this.#warned ||= warn;
    this.#setStatus(state, reason, httpStatus, failures);
    // A change is worth a warning; the same failure again only at debug, so a server that is down does not flood the log.
    const message = wasConnected ? 'upstream connection lost' : 'upstream unreachable';
    this.#o.logger[warn ? 'warn' : 'debug']({ server: this.#o.name, reason, retryInMs: delay }, message);
    this.#timer = setTimeout(() => this.#connect(), delay).unref();
  }

  #setStatus(state: ConnectionStatus['state'], lastError: string | undefined, httpStatus: number | undefined, attempts = state === 'connected' ? 0 : this.#status.attempts): void {
    this.#status = {
      state,
      attempts,
      since: new Date().toISOString(),
      ...(lastError === undefined ? {} : { lastError }),
      ...(httpStatus === undefined ? {} : { httpStatus }),
    };
    for (const h of [...this.#handlers.status]) h(this.#status);
  }
}

/** A connection with its multiplexer: what a remote held as a connection is, and a user's own connection to one. */
export interface RemoteConnection {
  readonly mux: Multiplexer;
  /** The multiplexer once connected; waits (bounded by the signal) while connecting; fails at once while down. */
  acquire(signal: AbortSignal): Promise<Multiplexer>;
  status(): ConnectionStatus;
  /** Stops the retry timer, the connection and its fetches, and the sessions. */
  close(): void;
}

export function connectRemote(options: HttpUpstreamOptions): RemoteConnection {
  const upstream = new HttpUpstream(options);
  const callee = { server: options.name, ...httpCallee(options.url) };
  const mux = new Multiplexer({ name: options.name, channel: upstream, logger: options.logger, callee: () => callee });
  return {
    mux,
    acquire: async (signal) => {
      await upstream.connected(signal);
      return mux;
    },
    status: () => upstream.status(),
    close: () => {
      upstream.close();
      mux.close();
    },
  };
}

/**
 * Sends a request with the user's token. A 401 Bearer challenge is reported;
 * when it refused a token berth sent and a fresh one is to be had (refreshed,
 * single-flight), the request goes once more, and whatever that answers stands.
 */
async function authorized(auth: ConnectionAuthorization, url: string, headers: Headers, send: () => Promise<Response>, replayable: boolean): Promise<Response> {
  const token = await auth.token();
  if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
  const response = await send();
  const challenge = challengeOf(response);
  if (challenge === undefined) return response;
  await auth.challenged(url, challenge, token, false);
  if (token === undefined || !replayable) return response;
  const fresh = await auth.token().catch(() => undefined);
  if (fresh === undefined || fresh === token) return response;
  await response.body?.cancel();
  headers.set('authorization', `Bearer ${fresh}`);
  const again = await send();
  const refused = challengeOf(again);
  if (refused !== undefined) await auth.challenged(url, refused, fresh, true);
  return again;
}

/** The Bearer challenge of a 401. */
function challengeOf(response: Response): string | undefined {
  const challenge = response.headers.get('www-authenticate');
  return response.status === 401 && challenge !== null && /^\s*bearer\b/i.test(challenge) ? challenge : undefined;
}

/** The answer itself was unusable (too large, not JSON, not JSON-RPC): the connection is fine, the one request failed. */
function isBadAnswer(err: unknown): boolean {
  return err instanceof MessageTooLarge || err instanceof SyntaxError || (err as Error).name === 'ZodError';
}

/** The HTTP status the SDK keeps beside an error (its code), or that its message names. */
function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'number' && code >= 100 && code <= 599) return code;
  const named = /\(HTTP (\d{3})\)/.exec((err as Error).message)?.[1];
  return named === undefined ? undefined : Number(named);
}

/** An error's message with its HTTP status, so a refusal (401, 403) reads as one. */
function reasonOf(err: unknown): string {
  const message = (err as Error).message;
  const status = statusOf(err);
  return status !== undefined && !message.includes(`HTTP ${status}`) ? `${message} (HTTP ${status})` : message;
}
