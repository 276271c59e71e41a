// An upstream MCP server reached over HTTP (streamable HTTP or SSE) as a
// message channel: one SDK client connection, replaced by a fresh one with
// backoff whenever it fails, each new connection a fresh server to initialize.
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { MessageChannel } from '../backends/backend.ts';
import type { Logger } from '../observe/log.ts';

export interface HttpChannelOptions {
  readonly name: string;
  readonly url: string;
  readonly transport: 'streamable-http' | 'sse';
  /** Headers of every request, read per request: a reload's new fixed headers apply without reconnecting. */
  readonly headers: () => Readonly<Record<string, string>>;
  readonly logger: Logger;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export interface HttpChannel extends MessageChannel {
  close(): void;
}

/** Hosted servers start in seconds: retry soon, then settle at a few seconds. */
const DEFAULT_BACKOFF = { initialMs: 200, maxMs: 5_000 };

export function httpChannel(options: HttpChannelOptions): HttpChannel {
  const handlers = { message: [] as ((m: unknown) => void)[], start: [] as (() => void)[], stop: [] as ((r: string) => void)[] };
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  let current: Transport | undefined;
  let delay = backoff.initialMs;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const lost = (transport: Transport, reason: string): void => {
    if (current !== transport) return;
    current = undefined;
    void transport.close().catch(() => undefined);
    for (const h of handlers.stop) h(reason);
    if (closed) return;
    options.logger.debug({ server: options.name, reason, retryInMs: delay }, 'upstream connection lost');
    timer = setTimeout(connect, delay);
    timer.unref();
    delay = Math.min(delay * 2, backoff.maxMs);
  };

  const connect = (): void => {
    timer = undefined;
    if (closed) return;
    const url = new URL(options.url);
    const withHeaders = (input: string | URL, init?: RequestInit): Promise<Response> => {
      const headers = new Headers(init?.headers);
      for (const [name, value] of Object.entries(options.headers())) headers.set(name, value);
      return fetch(input, { ...init, headers });
    };
    const transport: Transport =
      options.transport === 'sse'
        ? new SSEClientTransport(url, { fetch: withHeaders, eventSourceInit: { fetch: withHeaders } })
        : new StreamableHTTPClientTransport(url, { fetch: withHeaders });
    transport.onmessage = (m) => {
      // The first answer proves the connection: the next failure retries quickly again.
      delay = backoff.initialMs;
      for (const h of handlers.message) h(m);
    };
    transport.onclose = () => lost(transport, 'connection closed');
    transport.onerror = (err) => options.logger.debug({ server: options.name, err: err.message }, 'upstream stream error');
    current = transport;
    transport.start().then(
      () => {
        if (current === transport) for (const h of handlers.start) h();
      },
      (err: unknown) => lost(transport, reasonOf(err)),
    );
  };

  queueMicrotask(connect);
  return {
    send: (message: JSONRPCMessage) => {
      const transport = current;
      if (transport === undefined) return false;
      transport.send(message).catch((err: unknown) => lost(transport, reasonOf(err)));
      return true;
    },
    onMessage: (h) => void handlers.message.push(h),
    onStart: (h) => void handlers.start.push(h),
    onStop: (h) => void handlers.stop.push(h),
    close: () => {
      closed = true;
      clearTimeout(timer);
      const transport = current;
      current = undefined;
      void transport?.close().catch(() => undefined);
    },
  };
}

/** An error's message with the HTTP status the SDK keeps beside it, so a refusal (401, 403) can be told apart. */
function reasonOf(err: unknown): string {
  const message = (err as Error).message;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' && !message.includes(`HTTP ${code}`) ? `${message} (HTTP ${code})` : message;
}
