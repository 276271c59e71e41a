// One upstream MCP connection's lifecycle: berth initializes it once per
// (re)start and tells waiters when it is ready, or at once why it is not.
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { MessageChannel } from './channel.ts';
import type { Logger } from '../../observe/log.ts';
import type { Response } from '../../http/jsonrpc.ts';
import { ProxyError } from '../../http/proxy-error.ts';

export interface UpstreamInfo {
  readonly protocolVersion: string;
  readonly capabilities: Record<string, unknown>;
  readonly serverInfo: Record<string, unknown>;
  readonly instructions?: string;
}

interface Waiter {
  readonly resolve: (info: UpstreamInfo) => void;
  readonly reject: (err: Error) => void;
}

/** One upstream connection's initialize handshake and readiness. */
export class UpstreamLink {
  readonly #name: string;
  readonly #channel: MessageChannel;
  readonly #log: Logger;
  /** Called once the upstream answered initialize; `restarted` after a (re)start beyond the first. */
  readonly #onReady: (restarted: boolean) => void;
  #info: UpstreamInfo | undefined;
  #initId: string | undefined;
  #generation = 0;
  #waiters = new Set<Waiter>();
  #lastError: string | undefined;
  /** Set while the upstream is known to be failing: waiting would only delay the answer. */
  #failing: string | undefined;
  #closed = false;

  constructor(options: { name: string; channel: MessageChannel; logger: Logger; onReady: (restarted: boolean) => void }) {
    this.#name = options.name;
    this.#channel = options.channel;
    this.#log = options.logger;
    this.#onReady = options.onReady;
    this.#channel.onStart(() => this.#initialize());
  }

  get info(): UpstreamInfo | undefined {
    return this.#info;
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  get failing(): string | undefined {
    return this.#failing;
  }

  /** The initialize result once ready; waits, bounded by the signal, while the upstream starts. */
  ready(signal: AbortSignal): Promise<UpstreamInfo> {
    if (this.#info !== undefined) return Promise.resolve(this.#info);
    if (this.#closed) return Promise.reject(new ProxyError('upstream_closed', `server ${this.#name} is shutting down`));
    if (this.#failing !== undefined) return Promise.reject(this.#notReady(this.#failing));
    if (signal.aborted) return Promise.reject(this.#notReady(this.#lastError));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(this.#notReady(this.#lastError));
      };
      const waiter: Waiter = {
        resolve: (info) => {
          signal.removeEventListener('abort', onAbort);
          resolve(info);
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.#waiters.add(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Marks the upstream failing (crash-looping, unreachable): waiters and new callers get the reason at once. */
  fail(reason: string): void {
    this.#failing = reason;
    this.#lastError = reason;
    this.#rejectAll(this.#notReady(reason));
  }

  /** True when the message was the answer to berth's own initialize. */
  takeResponse(message: Response): boolean {
    if (this.#initId === undefined || message.id !== this.#initId) return false;
    this.#initialized(message);
    return true;
  }

  stopped(reason: string): void {
    this.#info = undefined;
    this.#initId = undefined;
    this.#lastError = reason;
  }

  close(): void {
    this.#closed = true;
    this.#rejectAll(new ProxyError('upstream_closed', `server ${this.#name} is shutting down`));
  }

  #notReady(reason: string | undefined): ProxyError {
    return new ProxyError('upstream_unavailable', reason === undefined ? `server ${this.#name} is not ready` : `server ${this.#name} is not ready: ${reason}`);
  }

  #rejectAll(err: Error): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.reject(err);
  }

  #initialize(): void {
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
    this.#info = {
      protocolVersion: String(r['protocolVersion']),
      capabilities: (r['capabilities'] as Record<string, unknown>) ?? {},
      serverInfo: (r['serverInfo'] as Record<string, unknown>) ?? {},
      ...(typeof r['instructions'] === 'string' ? { instructions: r['instructions'] } : {}),
    };
    this.#lastError = undefined;
    this.#failing = undefined;
    this.#channel.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.resolve(this.#info);
    this.#log.info({ server: this.#name, protocolVersion: this.#info.protocolVersion }, 'upstream ready');
    this.#onReady(this.#generation > 1);
  }
}
