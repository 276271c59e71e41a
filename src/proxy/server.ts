import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { Gate } from '../auth/gate.ts';
import type { Identity } from '../auth/identity.ts';
import { ANONYMOUS } from '../auth/identity.ts';
import type { CredentialRoutes } from '../credentials/routes.ts';
import { isCredentialPath } from '../credentials/routes.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { RequestContext } from './context.ts';
import type { OriginPolicy } from './guard.ts';
import { checkOrigin } from './guard.ts';
import { sendJson, sendRpcError } from './http-util.ts';
import type { RouteTable } from './table.ts';

/** What the HTTP front needs from the rest of berth; read per request, so swaps apply at once. */
export interface ProxyState {
  /** The route table in force; swapped whole on reload. */
  table(): RouteTable;
  originPolicy(): OriginPolicy;
  /** The identity step: providers, access rules, protected-resource metadata. */
  gate(): Gate;
  /**
   * Ready once the first config was applied; servers whose shared instances
   * are not ready are listed but do not make berth unready, since one broken
   * server must not take the others out of a load balancer.
   */
  readiness(): { readonly ready: boolean; readonly notReady: readonly string[] };
  status(): Promise<unknown>;
  /** /connect/<server> and /api/credentials, when berth has a state file to keep them in. */
  credentials?(): CredentialRoutes | undefined;
}

export interface ProxyServerOptions {
  readonly state: ProxyState;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

const MCP_PREFIX = '/mcp/';
const SSE_PREFIX = '/sse/';

/**
 * The one HTTP server: operations endpoints, then per-server MCP routes. Per
 * request it does a map lookup and the checks; everything else was built when
 * the route table was.
 */
export function createProxyServer(options: ProxyServerOptions): Server {
  const { state, logger, metrics } = options;
  const server = createServer((req, res) => {
    const started = process.hrtime.bigint();
    const requestId = headerValue(req, 'x-request-id') ?? randomUUID();
    res.setHeader('x-request-id', requestId);
    const ctx = new Context(requestId, res, logger);
    handle(req, res, ctx, state, metrics)
      .catch((err: unknown) => {
        ctx.log.error({ err }, 'request failed');
        sendRpcError(res, 500, -32603, `internal error (request ${requestId})`);
      })
      .finally(() => {
        const server = ctx.server;
        if (server === undefined) return;
        const method = ctx.method ?? req.method ?? 'unknown';
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        metrics.requests.inc({ server, method, status: String(res.statusCode) });
        metrics.latency.observe({ server, method }, seconds);
      });
  });
  // Streams are long-lived by design; only idle keep-alive sockets time out.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000;
  return server;
}

async function handle(req: IncomingMessage, res: ServerResponse, ctx: Context, state: ProxyState, metrics: Metrics): Promise<void> {
  // Split by hand: a URL object per request costs more than the rest of the routing.
  const raw = req.url ?? '/';
  const queryAt = raw.indexOf('?');
  const pathname = queryAt < 0 ? raw : raw.slice(0, queryAt);
  switch (pathname) {
    case '/healthz':
      return sendJson(res, 200, { status: 'ok' });
    case '/readyz': {
      const readiness = state.readiness();
      return sendJson(res, readiness.ready ? 200 : 503, readiness);
    }
    case '/metrics': {
      if (!(await state.gate().admitOperator(req, res))) return;
      const body = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(body);
      return;
    }
    case '/status':
      if (!(await state.gate().admitOperator(req, res))) return;
      return sendJson(res, 200, await state.status());
  }
  const refusal = checkOrigin(req, state.originPolicy());
  if (refusal !== undefined) return sendRpcError(res, 403, -32000, `Forbidden: ${refusal}`);
  const identity = await state.gate().admit(req, res, pathname, state.table());
  if (identity === undefined) return;
  ctx.identity = identity;

  const credentials = state.credentials?.();
  if (credentials !== undefined && isCredentialPath(pathname)) return credentials.handle(req, res, ctx, pathname);

  const isSse = pathname.startsWith(SSE_PREFIX);
  if (!pathname.startsWith(MCP_PREFIX) && !isSse) {
    return sendRpcError(res, 404, -32000, `Not Found: MCP servers are served at ${MCP_PREFIX}<server>`);
  }
  const rest = pathname.slice(isSse ? SSE_PREFIX.length : MCP_PREFIX.length);
  const [name = '', sub, ...more] = rest.split('/');
  if (more.length > 0) return sendRpcError(res, 404, -32000, `Not Found: MCP servers are served at ${MCP_PREFIX}<server>`);
  const table = state.table();
  const handler = table.handlers.get(name);
  if (handler === undefined) {
    const known = [...table.handlers.keys()].sort().join(', ');
    return sendRpcError(res, 404, -32000, `Not Found: no server named "${name}"${known === '' ? '' : `; servers: ${known}`}`);
  }
  ctx.server = name;
  if (!isSse) {
    // `/mcp/<server>/mcp` too: some clients insist that an endpoint path ends in /mcp.
    if (sub !== undefined && sub !== 'mcp') return sendRpcError(res, 404, -32000, `Not Found: the endpoint is ${MCP_PREFIX}${name}`);
    return handler.kind === 'passthrough' ? handler.passthrough.handle(req, res, ctx) : handler.endpoint.handle(req, res, ctx);
  }
  const sse = handler.kind === 'mcp' ? handler.endpoint : handler.sse;
  if (sub === undefined) return sse.handleSse(req, res, ctx, `${SSE_PREFIX}${name}/message`);
  if (sub === 'message') return sse.handleSseMessage(req, res, ctx, new URLSearchParams(queryAt < 0 ? '' : raw.slice(queryAt + 1)).get('sessionId'));
  return sendRpcError(res, 404, -32000, 'Not Found');
}

/** A request's context; the abort signal and the child logger are made only when used. */
class Context implements RequestContext {
  readonly requestId: string;
  identity: Identity = ANONYMOUS;
  server?: string;
  method?: string;
  readonly #res: ServerResponse;
  readonly #logger: Logger;
  #log: Logger | undefined;
  #abort: AbortController | undefined;

  constructor(requestId: string, res: ServerResponse, logger: Logger) {
    this.requestId = requestId;
    this.#res = res;
    this.#logger = logger;
  }

  get user(): string {
    return this.identity.user;
  }

  get log(): Logger {
    return (this.#log ??= this.#logger.child({ requestId: this.requestId }));
  }

  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      const abort = new AbortController();
      this.#abort = abort;
      // Only a client that leaves before the answer is complete aborts.
      this.#res.once('close', () => {
        if (!this.#res.writableFinished) abort.abort();
      });
    }
    return this.#abort.signal;
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v.length <= 200 ? v : undefined;
}
