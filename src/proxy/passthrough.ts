import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import httpProxy from 'http-proxy';
import type { RequestContext } from './context.ts';
import { sendRpcError } from './http-util.ts';
import { ErrorCode } from './jsonrpc.ts';

/** Request headers that belong to the client's hop with berth and never go upstream. */
const STRIPPED = ['authorization', 'cookie', 'proxy-authorization', 'origin', 'x-request-id', 'x-api-key'];

export interface PassthroughOptions {
  readonly server: string;
  readonly url: string;
  /** Added to every upstream request (config `headers`). */
  readonly headers: Readonly<Record<string, string>>;
  readonly maxBodyBytes: number;
}

/**
 * Pure HTTP passthrough to a streamable-HTTP upstream: bodies stream both
 * ways untouched (SSE included), sessions are the upstream's own. berth
 * removes the client's credentials and adds the configured headers.
 */
export class Passthrough {
  readonly #o: PassthroughOptions;
  readonly #proxy: httpProxy;
  readonly #agent: Agent;

  constructor(options: PassthroughOptions) {
    this.#o = options;
    // Keep-alive to the upstream: a new connection per request would cost more than the proxying.
    const agentOptions = { keepAlive: true, maxSockets: 256 };
    this.#agent = new URL(options.url).protocol === 'https:' ? new HttpsAgent(agentOptions) : new Agent(agentOptions);
    this.#proxy = httpProxy.createProxyServer({ target: options.url, ignorePath: true, changeOrigin: true, xfwd: false, proxyTimeout: 0, agent: this.#agent });
    this.#proxy.on('proxyReq', (proxyReq) => {
      for (const name of STRIPPED) proxyReq.removeHeader(name);
      for (const [name, value] of Object.entries(options.headers)) proxyReq.setHeader(name, value);
    });
  }

  handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    ctx.method = req.method ?? 'unknown';
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > this.#o.maxBodyBytes) {
      sendRpcError(res, 413, ErrorCode.invalidRequest, `request body over ${this.#o.maxBodyBytes} bytes`);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      res.once('close', () => resolve());
      this.#proxy.web(req, res, {}, (err) => {
        ctx.log.warn({ server: this.#o.server, err: err.message }, 'upstream request failed');
        sendRpcError(res, 502, ErrorCode.upstreamUnavailable, `upstream of ${this.#o.server} failed: ${err.message}`);
        resolve();
      });
    });
  }

  close(): void {
    this.#proxy.close();
    this.#agent.destroy();
  }
}
