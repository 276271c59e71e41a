import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../observe/log.ts';
import { Multiplexer } from './multiplex.ts';
import type { UpstreamChannel } from './multiplex.ts';

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

/**
 * A legacy HTTP+SSE upstream, held as one connection that berth multiplexes
 * to its clients; reconnects with backoff when the stream drops.
 */
export class RemoteSse {
  readonly mux: Multiplexer;
  readonly #o: { server: string; url: string; headers: Readonly<Record<string, string>>; logger: Logger };
  readonly #handlers = { message: [] as ((m: unknown) => void)[], start: [] as (() => void)[], stop: [] as ((r: string) => void)[] };
  #transport: SSEClientTransport | undefined;
  #closed = false;
  #delay = RECONNECT_MIN_MS;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { server: string; url: string; headers: Readonly<Record<string, string>>; logger: Logger }) {
    this.#o = options;
    const channel: UpstreamChannel = {
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
    const transport = new SSEClientTransport(new URL(this.#o.url), { requestInit: { headers }, eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }) } });
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
