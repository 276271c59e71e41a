import { SSEClientTransport, SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../observe/log.ts';
import { ProxyError } from './errors.ts';
import { Multiplexer } from './multiplex.ts';
import type { MessageChannel } from '../backends/backend.ts';

export interface RemoteUpstreamOptions {
  readonly server: string;
  readonly url: string;
  readonly transport: 'sse' | 'streamable-http';
  readonly headers: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Bounds one connection attempt, MCP handshake included. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** The first retry delay; it doubles per failure up to `retryMaxMs`, each with jitter. Default 500 ms. */
  readonly retryMinMs?: number;
  /** Default 30 s. */
  readonly retryMaxMs?: number;
}

/** Where a remote connection stands, for `/status`. */
export interface RemoteStatus {
  readonly state: 'connecting' | 'connected' | 'down' | 'closed';
  readonly lastError?: string;
  /** ISO time of the last change of state. */
  readonly since: string;
}

const DEFAULTS = { connectTimeoutMs: 10_000, retryMinMs: 500, retryMaxMs: 30_000 };

/** One connection to the remote: the transport and what aborts its fetches. */
interface Link {
  readonly transport: Transport;
  readonly abort: AbortController;
  started: boolean;
}

/**
 * A remote MCP server held as one client connection that berth multiplexes
 * to its clients. Used for SSE remotes, and for legacy SSE clients of
 * streamable-HTTP remotes. At most one connection attempt is in flight; a
 * failed one is closed whole (the SDK's EventSource would otherwise keep
 * reconnecting on its own) and retried with capped, jittered backoff. While
 * the remote is down, new clients fail at once with the last error.
 */
export class RemoteUpstream {
  readonly mux: Multiplexer;
  readonly #o: Required<RemoteUpstreamOptions>;
  readonly #handlers = { message: [] as ((m: unknown) => void)[], start: [] as (() => void)[], stop: [] as ((r: string) => void)[] };
  #link: Link | undefined;
  #status: RemoteStatus = { state: 'connecting', since: new Date().toISOString() };
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Callers waiting for the attempt in flight to end. */
  #waiters = new Set<() => void>();

  constructor(options: RemoteUpstreamOptions) {
    this.#o = { ...DEFAULTS, ...options };
    const channel: MessageChannel = {
      send: (m: JSONRPCMessage) => this.#send(m),
      onMessage: (h) => this.#handlers.message.push(h),
      onStart: (h) => this.#handlers.start.push(h),
      onStop: (h) => this.#handlers.stop.push(h),
    };
    this.mux = new Multiplexer({ name: options.server, channel, logger: options.logger });
    void this.#connect();
  }

  status(): RemoteStatus {
    return this.#status;
  }

  /** The multiplexer once connected; waits (bounded by the signal) while connecting; fails at once while down. */
  async acquire(signal: AbortSignal): Promise<Multiplexer> {
    for (;;) {
      const { state, lastError } = this.#status;
      if (state === 'connected') return this.mux;
      if (state === 'closed') throw new ProxyError('remote_unavailable', `server ${this.#o.server} is shutting down`);
      if (state === 'down') throw new ProxyError('remote_unavailable', `server ${this.#o.server} is unreachable: ${lastError ?? 'unknown error'}`);
      if (signal.aborted) throw new ProxyError('remote_unavailable', `server ${this.#o.server} is still connecting`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#waiters.delete(wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        this.#waiters.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /** Stops everything: the retry timer, the connection and its fetches, the sessions. */
  close(): void {
    if (this.#status.state === 'closed') return;
    clearTimeout(this.#timer);
    const link = this.#link;
    this.#link = undefined;
    this.#setStatus('closed');
    link?.abort.abort();
    void link?.transport.close().catch(() => undefined);
    this.mux.close();
  }

  async #connect(): Promise<void> {
    const abort = new AbortController();
    const link: Link = { transport: this.#transport(abort.signal), abort, started: false };
    this.#link = link;
    const { transport } = link;
    transport.onmessage = (m) => {
      if (this.#link === link) this.#handlers.message.forEach((h) => h(m));
    };
    transport.onclose = () => this.#lost(link, 'connection closed');
    // The SSE stream broke: the SDK's EventSource would reconnect by itself, outside this class's one attempt at a time.
    transport.onerror = (err) => (err instanceof SseError ? this.#lost(link, err.message) : this.#o.logger.debug({ server: this.#o.server, err: err.message }, 'upstream stream error'));
    const deadline = AbortSignal.timeout(this.#o.connectTimeoutMs);
    try {
      await Promise.race([transport.start(), aborted(AbortSignal.any([abort.signal, deadline]))]);
      if (this.#link !== link) return;
      link.started = true;
      this.#handlers.start.forEach((h) => h());
      await this.mux.ready(AbortSignal.any([abort.signal, deadline]));
    } catch (err) {
      this.#lost(link, deadline.aborted ? `no connection within ${this.#o.connectTimeoutMs} ms` : (err as Error).message);
      return;
    }
    if (this.#link !== link) return;
    this.#failures = 0;
    this.#setStatus('connected');
    this.#o.logger.info({ server: this.#o.server }, 'remote connected');
  }

  #transport(signal: AbortSignal): Transport {
    const url = new URL(this.#o.url);
    const requestInit = { headers: { ...this.#o.headers } };
    // Every fetch of this connection, the SSE stream's included, ends when the connection is dropped.
    const fetchBound = (input: string | URL, init?: RequestInit): Promise<Response> => fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });
    return this.#o.transport === 'sse' ? new SSEClientTransport(url, { requestInit, fetch: fetchBound }) : new StreamableHTTPClientTransport(url, { requestInit, fetch: fetchBound });
  }

  #send(message: JSONRPCMessage): boolean {
    const link = this.#link;
    if (link?.started !== true) return false;
    link.transport.send(message).catch((err: unknown) => {
      // Only a refused message says nothing about the connection; anything else (network, unknown session) ends it.
      if (isRefusal(err)) this.#o.logger.warn({ server: this.#o.server, err: (err as Error).message }, 'upstream refused a message');
      else this.#lost(link, (err as Error).message);
    });
    return true;
  }

  /** Ends a connection (or attempt) once, whichever way it failed, and schedules the next attempt. */
  #lost(link: Link, reason: string): void {
    if (this.#link !== link) return;
    this.#link = undefined;
    const wasConnected = this.#status.state === 'connected';
    link.abort.abort();
    // After the current event: the SDK's EventSource arms its own reconnect timer right after reporting an error, and closing clears it.
    queueMicrotask(() => void link.transport.close().catch(() => undefined));
    if (link.started) this.#handlers.stop.forEach((h) => h(reason));
    // A connection that was up gets one quiet attempt (clients wait for it); a failed attempt means down.
    this.#setStatus(wasConnected ? 'connecting' : 'down', reason);
    const delay = backoff(this.#failures++, this.#o.retryMinMs, this.#o.retryMaxMs);
    this.#o.logger.warn({ server: this.#o.server, reason, retryInMs: delay }, wasConnected ? 'remote connection lost' : 'remote unreachable');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay).unref();
  }

  #setStatus(state: RemoteStatus['state'], lastError?: string): void {
    const error = lastError ?? this.#status.lastError;
    this.#status = { state, since: new Date().toISOString(), ...(error === undefined ? {} : { lastError: error }) };
    for (const wake of [...this.#waiters]) wake();
  }
}

/** Exponential backoff with jitter: between half and all of min·2^failures, capped. */
function backoff(failures: number, min: number, max: number): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(failures, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** The upstream answered a message with an HTTP error other than "unknown session" (404). */
function isRefusal(err: unknown): boolean {
  if (err instanceof StreamableHTTPError) return err.code !== undefined && err.code !== 404;
  const status = /\(HTTP (\d{3})\)/.exec((err as Error).message)?.[1];
  return status !== undefined && status !== '404';
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(new Error('aborted'));
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
  });
}
