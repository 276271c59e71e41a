import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Gate } from '../auth/gate.ts';
import type { CredentialRoutes } from '../credentials/routes.ts';
import { isCredentialPath } from '../credentials/routes.ts';
import { CONNECT_PREFIX } from '../credentials/missing.ts';
import { browserSessions, sessionCookie, TICKET_PARAM } from '../credentials/browser.ts';
import { isSignInPath } from '../credentials/signin.ts';
import type { Identity } from '../identity.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { Context } from '../http/context.ts';
import { requestContext } from '../http/context.ts';
import type { OriginPolicy } from '../http/guard.ts';
import { isLoopbackAddress } from '../net/cidr.ts';
import { checkHost, checkOrigin, corsHeaders, isPreflight, PREFLIGHT_HEADERS } from '../http/guard.ts';
import { sendJson, sendRpcError } from '../http/json-io.ts';
import { CLIENT_METADATA_PATH } from '../oauth/authorizer.ts';
import { targetOf } from '../auth/resource.ts';
import type { RouteTable } from './routes/table.ts';

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
  /** berth's OAuth Client ID Metadata Document, public (authorization servers fetch it); undefined where berth serves none. */
  clientMetadata?(): Readonly<Record<string, unknown>> | undefined;
}

export interface ProxyServerOptions {
  readonly state: ProxyState;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Deadline for receiving a whole request, headers and body (408 past it); response streams are not bound by it. */
  readonly requestTimeoutMs?: number;
}

const MCP_PREFIX = '/mcp/';
const SSE_PREFIX = '/sse/';
const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 20_000;
const READ_ONLY = { allow: 'GET, HEAD' };

/**
 * The one HTTP server: probes, then the front door, then operations
 * endpoints and per-server MCP routes. Per request it does a map lookup and
 * the checks; everything else was built when the route table was.
 */
export function createProxyServer(options: ProxyServerOptions): Server {
  const { state, logger, metrics } = options;
  const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  // Deadlines are checked on this interval, so it is a fraction of the shortest one.
  const server = createServer({ connectionsCheckingInterval: Math.min(1_000, Math.ceil(requestTimeout / 4)) }, (req, res) => {
    const started = process.hrtime.bigint();
    const ctx = requestContext(req, res, logger);
    const { requestId } = ctx;
    const done = (): void => {
      const server = ctx.server;
      if (server === undefined) return;
      const method = ctx.method ?? req.method ?? 'unknown';
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ server, method, status: String(res.statusCode) });
      metrics.latency.observe({ server, method }, seconds);
    };
    // One reaction for both outcomes: a chain of catch and finally costs a promise and a microtask more per request.
    handle(req, res, ctx, state, metrics).then(done, (err: unknown) => {
      ctx.log.error({ err }, 'request failed');
      sendRpcError(res, 500, -32603, `internal error (request ${requestId})`);
      done();
    });
  });
  // Node's requestTimeout ends when the request is received: a slow sender
  // (one byte a second) gets 408, a long-lived response stream does not.
  server.requestTimeout = requestTimeout;
  server.headersTimeout = Math.min(HEADERS_TIMEOUT_MS, requestTimeout);
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerClientError);
  server.once('listening', () => {
    if (!state.gate().configured) warnIfExposed(server, logger);
  });
  return server;
}

/** Answers for requests Node refused before berth saw them; other codes get 400. */
const CLIENT_ERROR_STATUS: Readonly<Record<string, string>> = {
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
};

/**
 * Like Node's default, but ends the socket instead of destroying it: a slow
 * sender still has bytes in flight, and destroying with unread input resets
 * the connection, which can discard the 408 before the client reads it.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A response already under way cannot be followed by another status line.
  const started = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (err.code === 'ECONNRESET' || !socket.writable || started) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${CLIENT_ERROR_STATUS[err.code ?? ''] ?? '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  setTimeout(() => socket.destroy(), 5_000).unref();
}

/**
 * A one-time link's ticket is spent for a browser session (a cookie) and the
 * browser sent on to the page without it; a live session is its user's
 * identity, while the auth config still stands behind it. Undefined: the
 * request authenticates as any other.
 */
function browserIdentity(req: IncomingMessage, res: ServerResponse, pathname: string, query: string, gate: Gate): Identity | 'answered' | undefined {
  const ticket = new URLSearchParams(query).get(TICKET_PARAM);
  if (ticket !== null && (req.method === 'GET' || req.method === 'HEAD')) {
    const session = browserSessions.redeem(ticket, decodeURIComponent(pathname.slice(CONNECT_PREFIX.length)));
    if (session === undefined) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end('This link was used already or expired. Ask your MCP client again for a new one.\n');
      return 'answered';
    }
    res.writeHead(303, { location: pathname, 'set-cookie': sessionCookie(session), 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }).end();
    return 'answered';
  }
  const identity = browserSessions.identityOf(req);
  return identity !== undefined && gate.authenticator.vouches(identity) ? identity : undefined;
}

async function handle(req: IncomingMessage, res: ServerResponse, ctx: Context, state: ProxyState, metrics: Metrics): Promise<void> {
  // Split by hand: a URL object per request costs more than the rest of the routing.
  const raw = req.url ?? '/';
  const queryAt = raw.indexOf('?');
  const pathname = queryAt < 0 ? raw : raw.slice(0, queryAt);
  // Probes answer everyone: load balancers and kubelets call from other hosts, without credentials.
  switch (pathname) {
    case '/healthz':
      if (readOnly(req, res)) sendJson(res, 200, { status: 'ok' });
      return;
    case '/readyz': {
      if (!readOnly(req, res)) return;
      const readiness = state.readiness();
      return sendJson(res, readiness.ready ? 200 : 503, readiness);
    }
  }
  if (!frontDoor(req, res, state.originPolicy())) return;
  switch (pathname) {
    case CLIENT_METADATA_PATH: {
      const doc = state.clientMetadata?.();
      if (doc === undefined) break;
      if (readOnly(req, res)) sendJson(res, 200, doc);
      return;
    }
    case '/metrics': {
      if (!readOnly(req, res) || !(await state.gate().admitOperator(req, res))) return;
      const body = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    case '/status':
      if (readOnly(req, res) && (await state.gate().admitOperator(req, res))) sendJson(res, 200, await state.status());
      return;
  }
  // One route table per request: the gate checks access on the table the request is then served from.
  const table = state.table();
  const gate = state.gate();
  // An unknown server is not found, whoever asks: no challenge points at metadata that does not exist.
  const target = targetOf(pathname);
  if (target !== undefined && !table.handlers.has(target.server)) return notFound(res, target.server, table, !gate.configured && isLoopbackAddress(req.socket.remoteAddress));
  const credentials = state.credentials?.();
  // A browser signing in through a jwt issuer has no identity yet: that is what it comes for.
  if (credentials !== undefined && isSignInPath(pathname)) return credentials.signIn(req, res, ctx, pathname, gate.authenticator.signIns);
  // A browser on /connect comes with the link berth gave its user, or the session that link or a sign-in opened.
  const connect = pathname.startsWith(CONNECT_PREFIX);
  const browser = connect ? browserIdentity(req, res, pathname, queryAt < 0 ? '' : raw.slice(queryAt + 1), gate) : undefined;
  if (browser === 'answered') return;
  // Without either, a browser is offered the sign-in instead of a 401 it can do nothing with.
  const offer = connect && credentials !== undefined ? (challenge: Readonly<Record<string, string>>) => credentials.offerSignIn(req, res, pathname, gate.authenticator.signIns, challenge) : undefined;
  const identity = browser ?? (await gate.admit(req, res, pathname, (name) => table.handlers.get(name)?.route, offer));
  if (identity === undefined) return;
  ctx.identity = identity;
  // Per identity, not per address: anonymous loopback clients are one identity, whatever address they come from.
  ctx.client = `user:${identity.key}`;
  if (credentials !== undefined && isCredentialPath(pathname)) return credentials.handle(req, res, ctx, pathname);
  return routeMcp(req, res, ctx, table, pathname, queryAt < 0 ? '' : raw.slice(queryAt + 1));
}

/** 404 for a server the table does not hold; the servers it does are named only to callers served without credentials. */
function notFound(res: ServerResponse, name: string, table: RouteTable, nameServers: boolean): void {
  const known = nameServers ? [...table.handlers.keys()].sort().join(', ') : '';
  sendRpcError(res, 404, -32000, `Not Found: no server named "${name}"${known === '' ? '' : `; servers: ${known}`}`);
}

/**
 * The front door's checks before identity, the one place every route but
 * the probes passes, in this order: Host (DNS rebinding), Origin, CORS
 * (preflights are answered here, since browsers send them without
 * credentials). Answers the request itself and returns false when it goes
 * no further; the identity step (the auth gate) follows.
 */
export function frontDoor(req: IncomingMessage, res: ServerResponse, policy: OriginPolicy): boolean {
  const refusal = checkHost(req, policy) ?? checkOrigin(req, policy);
  if (refusal !== undefined) {
    sendRpcError(res, 403, -32000, `Forbidden: ${refusal}`);
    return false;
  }
  const cors = corsHeaders(req, policy);
  if (cors !== undefined) for (const [name, value] of Object.entries(cors)) res.setHeader(name, value);
  if (!isPreflight(req)) return true;
  if (cors === undefined) sendRpcError(res, 403, -32000, `Forbidden: Origin ${req.headers.origin ?? ''} may not call berth cross-origin; add it to listen.allowedOrigins`);
  else res.writeHead(204, PREFLIGHT_HEADERS).end();
  return false;
}

/** Operations endpoints are read-only: anything but GET and HEAD gets 405. */
function readOnly(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  sendRpcError(res, 405, -32000, `method ${req.method ?? ''} not allowed`, READ_ONLY);
  return false;
}

/** Says at start what other hosts can reach: only the probes, while no auth provider is enforced. */
function warnIfExposed(server: Server, logger: Logger): void {
  const address = server.address();
  if (address === null || typeof address === 'string' || isLoopbackAddress(address.address)) return;
  logger.warn(
    { address: address.address, port: address.port, open: ['/healthz', '/readyz'], loopbackOnly: ['/mcp/<server>', '/sse/<server>', '/status', '/metrics'] },
    'listening on a non-loopback address without auth: other hosts reach /healthz and /readyz (which name servers that are not ready); MCP routes, /status and /metrics refuse them with 403 until auth is configured',
  );
}

async function routeMcp(req: IncomingMessage, res: ServerResponse, ctx: Context, table: RouteTable, pathname: string, query: string): Promise<void> {
  const isSse = pathname.startsWith(SSE_PREFIX);
  if (!pathname.startsWith(MCP_PREFIX) && !isSse) {
    return sendRpcError(res, 404, -32000, `Not Found: MCP servers are served at ${MCP_PREFIX}<server>`);
  }
  const rest = pathname.slice(isSse ? SSE_PREFIX.length : MCP_PREFIX.length);
  const [name = '', sub, ...more] = rest.split('/');
  if (more.length > 0) return sendRpcError(res, 404, -32000, `Not Found: MCP servers are served at ${MCP_PREFIX}<server>`);
  const handler = table.handlers.get(name);
  if (handler === undefined) return notFound(res, name, table, true);
  ctx.server = name;
  if (!isSse) {
    // `/mcp/<server>/mcp` too: some clients insist that an endpoint path ends in /mcp.
    if (sub !== undefined && sub !== 'mcp') return sendRpcError(res, 404, -32000, `Not Found: the endpoint is ${MCP_PREFIX}${name}`);
    return handler.kind === 'passthrough' ? handler.passthrough.handle(req, res, ctx) : handler.endpoint.handle(req, res, ctx);
  }
  const sse = handler.kind === 'mcp' ? handler.endpoint : handler.sse;
  if (sub === undefined) return sse.handleSse(req, res, ctx, `${SSE_PREFIX}${name}/message`);
  if (sub === 'message') return sse.handleSseMessage(req, res, ctx, new URLSearchParams(query).get('sessionId'));
  return sendRpcError(res, 404, -32000, 'Not Found');
}
