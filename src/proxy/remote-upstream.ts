import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../observe/log.ts';
import { Multiplexer } from './multiplex.ts';
import type { MessageChannel } from '../backends/backend.ts';

export interface RemoteUpstreamOptions {
  readonly server: string;
  readonly url: string;
  readonly transport: 'sse' | 'streamable-http';
  readonly headers: Readonly<Record<string, string>>;
  readonly logger: Logger;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

/**
 * A remote MCP server held as one client connection that berth multiplexes
 * to its clients; reconnects with backoff when the connection drops. Used for
 * SSE remotes, and for legacy SSE clients of streamable-HTTP remotes.
 */
export class RemoteUpstream {
  readonly mux: Multiplexer;
  readonly #o: RemoteUpstreamOptions;
  readonly #handlers = { message: [] as ((m: unknown) => void)[], start: [] as (() => void)[], stop: [] as ((r: string) => void)[] };
  #transport: Transport | undefined;
  #closed = false;
  #delay = RECONNECT_MIN_MS;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RemoteUpstreamOptions) {
    this.#o = options;
    const channel: MessageChannel = {
      send: (m: JSONRPCMessage) => {
        if (this.#transport === undefined) return false;
        this.#transport.send(m).catch((err: unknown) => this.#o.logger.warn({ server: this.#o.server, err: (err as Error).message }, 'send to upstream failed'));
        return true;
      },
      onMessage: (h) => this.#handlers.message.push(h),
      onStart: (h) => this.#handlers.start.push(h),
      onStop: (h) => this.#handlers.stop.push(h),
    };
    this.mux = new Multiplexer({ name: options.server, channel, logger: options.logger });
    void this.#connect();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const headers = { ...this.#o.headers };
    const url = new URL(this.#o.url);
    const transport: Transport =
      this.#o.transport === 'sse'
        ? new SSEClientTransport(url, { requestInit: { headers }, eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }) } })
        : new StreamableHTTPClientTransport(url, { requestInit: { headers } });
    transport.onmessage = (m) => this.#handlers.message.forEach((h) => h(m));
    transport.onclose = () => this.#lost('stream closed');
    transport.onerror = (err) => this.#o.logger.debug({ server: this.#o.server, err: err.message }, 'upstream stream error');
    try {
      await transport.start();
    } catch (err) {
      this.#lost((err as Error).message);
      return;
    }
    this.#transport = transport;
    this.#delay = RECONNECT_MIN_MS;
    this.#handlers.start.forEach((h) => h());
  }

  #lost(reason: string): void {
    if (this.#transport !== undefined) {
      this.#transport = undefined;
      this.#handlers.stop.forEach((h) => h(reason));
    }
    if (this.#closed || this.#timer !== undefined) return;
    this.#o.logger.warn({ server: this.#o.server, reason, retryInMs: this.#delay }, 'upstream connection lost');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, this.#delay).unref();
    this.#delay = Math.min(this.#delay * 2, RECONNECT_MAX_MS);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.mux.close();
    void this.#transport?.close();
  }
}
