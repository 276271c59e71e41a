// `berth bridge`: one stdio MCP server served as streamable HTTP (and legacy
// SSE), so that container backends can host stdio servers as HTTP endpoints.
// Built from the proxy's own parts: the supervised child, the multiplexer and
// the MCP endpoint, so a bridged server behaves as it would inside berth.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { stdioChannel } from '../backends/local/channel.ts';
import { StdioChild } from '../backends/local/child.ts';
import { BerthError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import type { RequestContext } from '../http/context.ts';
import { requestContext } from '../http/context.ts';
import { checkOrigin, originPolicy } from '../http/guard.ts';
import { sendJson, sendRpcError } from '../http/json-io.ts';
import { McpEndpoint } from '../proxy/downstream/mcp-endpoint.ts';
import { Multiplexer } from '../proxy/mux/multiplex.ts';
import { SessionStore } from '../proxy/downstream/sessions.ts';
import { exitCode } from './output.ts';

export interface BridgeOptions {
  readonly host: string;
  readonly port: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly logger: Logger;
}

export interface Bridge {
  /** The streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp. */
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

const MCP_PATH = '/mcp';
const SSE_PATH = '/sse';
const SSE_MESSAGE_PATH = '/message';
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const KEEP_ALIVE_MS = 15_000;
const SESSION_IDLE_TTL_MS = 30 * 60_000;
const MAX_SESSIONS = 10_000;

/** Starts the server's process and the HTTP listener in front of it. */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const { logger } = options;
  // Inside a container the environment is the server's: it passes on whole.
  const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
  const child = new StdioChild({ id: 'bridge', command: options.command, args: options.args, env, logger });
  const mux = new Multiplexer({ name: options.command, channel: stdioChannel(child), logger });
  const sessions = new SessionStore({ idleTtlMs: SESSION_IDLE_TTL_MS, maxSessions: MAX_SESSIONS });
  const endpoint = new McpEndpoint({ server: 'bridge', acquire: async () => mux, sessions, maxBodyBytes: MAX_BODY_BYTES, keepAliveMs: KEEP_ALIVE_MS, logger });
  const policy = originPolicy({ host: options.host });
  const server = createServer((req, res) => {
    const ctx = requestContext(req, res, logger);
    ctx.client = 'bridge';
    handle(req, res, ctx).catch((err: unknown) => {
      ctx.log.error({ err }, 'request failed');
      sendRpcError(res, 500, -32603, `internal error (request ${ctx.requestId})`);
    });
  });
  server.requestTimeout = 0;
  const sweep = setInterval(() => sessions.expire(), 60_000).unref();

  async function handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://bridge');
    switch (url.pathname) {
      case '/healthz':
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        const status = child.status();
        return sendJson(res, mux.info === undefined ? 503 : 200, { ready: mux.info !== undefined, state: status.state, restarts: status.restarts, ...(status.lastError === undefined ? {} : { lastError: status.lastError }) });
      }
    }
    const refusal = checkOrigin(req, policy);
    if (refusal !== undefined) return sendRpcError(res, 403, -32000, `Forbidden: ${refusal}`);
    switch (url.pathname) {
      case MCP_PATH:
        return endpoint.handle(req, res, ctx);
      case SSE_PATH:
        return endpoint.handleSse(req, res, ctx, SSE_MESSAGE_PATH);
      case SSE_MESSAGE_PATH:
        return endpoint.handleSseMessage(req, res, ctx, url.searchParams.get('sessionId'));
      default:
        return sendRpcError(res, 404, -32000, `Not Found: the MCP endpoint is ${MCP_PATH} (legacy SSE: ${SSE_PATH})`);
    }
  }

  child.start();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve());
    });
  } catch (err) {
    await child.stop();
    throw new BerthError('listen_failed', `cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`, { cause: err });
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}${MCP_PATH}`;
  logger.info({ url, command: options.command }, 'bridge listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(sweep);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      sessions.closeAll();
      mux.close();
      server.closeAllConnections();
      await Promise.all([closed, child.stop()]);
    })();
    return closing;
  };
  return { url, server, close };
}

/** `berth bridge -- COMMAND [ARGS…]`: runs until SIGTERM/SIGINT. */
export async function runBridge(options: BridgeOptions): Promise<number> {
  const bridge = await startBridge(options);
  return new Promise((resolve) => {
    const shutdown = (): void => void bridge.close().then(() => resolve(exitCode.ok));
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}
