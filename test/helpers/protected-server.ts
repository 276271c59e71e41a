// A real MCP server (the SDK's, streamable HTTP, stateless; or legacy SSE)
// that takes only bearer tokens from a test issuer whose audience is this
// server's resource (its URL unless told otherwise), the way a remote such as
// GitHub's or Linear's would: a 401 with a Bearer challenge naming its
// protected-resource metadata (RFC 9728) otherwise.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpServer as ModernServer, createMcpHandler } from '@modelcontextprotocol/server';

export interface ProtectedServer {
  readonly url: string;
  /** Every token the server accepted, decoded; and every Authorization header it saw. */
  readonly accepted: JWTPayload[];
  readonly authorizations: (string | undefined)[];
  /** How many POSTs (MCP messages) came with a token. */
  readonly posts: () => number;
  /** From now on every token accepted so far is refused with 401 invalid_token, as if its authorization server had revoked it. */
  revokeAccepted(): void;
  /** While on, every token is refused with 401 invalid_token, however fresh. */
  refuseAll(on: boolean): void;
  stop(): Promise<void>;
}

export interface ProtectedOptions {
  /** Publish protected-resource metadata (default true); without it the server is of the 2025-03-26 era. */
  readonly metadata?: boolean;
  /** The metadata's `resource`, when a test wants it to name another. */
  readonly resource?: string;
  readonly scopes?: readonly string[];
  /** A scope every token must carry; others get 403 insufficient_scope naming it (step-up). */
  readonly requireScope?: string;
  /** Legacy HTTP+SSE (GET /sse opens the stream, POST /messages sends) instead of streamable HTTP at /mcp. */
  readonly sse?: boolean;
  /** The port to listen on; 0 (default) picks one. */
  readonly port?: number;
  /** Where the resource metadata is served (and named in challenges) instead of its well-known path. */
  readonly metadataAt?: string;
  /** Serve MCP with the v2 SDK's handler, which speaks 2026-07-28 besides the 2025 revisions. */
  readonly modern?: boolean;
}

export async function startProtectedServer(issuer: string, options: ProtectedOptions = {}): Promise<ProtectedServer> {
  const accepted: JWTPayload[] = [];
  const authorizations: (string | undefined)[] = [];
  const seen = new Set<string>();
  const revoked = new Set<string>();
  let refusing = false;
  let posts = 0;
  const sse = new Map<string, SSEServerTransport>();
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const mcpPath = options.sse === true ? '/sse' : '/mcp';
  const metadataPath = options.metadataAt ?? `/.well-known/oauth-protected-resource${mcpPath}`;
  let url = '';
  const whoamiText = (claims: JWTPayload | undefined): string => `sub=${String(claims?.sub)} aud=${String(claims?.aud)}`;
  const mcpServer = (claims: JWTPayload): McpServer => {
    const server = new McpServer({ name: 'protected', version: '1.0.0' });
    server.registerTool('whoami', { description: 'The token subject' }, () => ({ content: [{ type: 'text', text: whoamiText(claims) }] }));
    return server;
  };
  const modern = createMcpHandler((ctx) => {
    const server = new ModernServer({ name: 'protected', version: '1.0.0' });
    server.registerTool('whoami', { description: 'The token subject' }, () => ({ content: [{ type: 'text' as const, text: whoamiText(ctx.authInfo?.extra as JWTPayload | undefined) }] }));
    return server;
  });
  /** One request through the v2 handler (web Request in, Response out), the verified token passed as its authInfo. */
  const serveModern = async (req: IncomingMessage, res: ServerResponse, claims: JWTPayload): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = Object.entries(req.headers).flatMap(([name, value]): [string, string][] => (value === undefined ? [] : [[name, Array.isArray(value) ? value.join(', ') : value]]));
    const request = new Request(new URL(req.url ?? '/', url), { method: req.method ?? 'GET', headers, ...(req.method === 'POST' ? { body: Buffer.concat(chunks) } : {}) });
    const token = (req.headers.authorization ?? '').slice(7);
    const response = await modern.fetch(request, { authInfo: { token, clientId: String(claims.client_id ?? ''), scopes: String(claims.scope ?? '').split(' '), extra: claims } });
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  };
  /** The request's token claims, or undefined once it has been answered 401 or 403. */
  const check = async (req: IncomingMessage, res: ServerResponse): Promise<JWTPayload | undefined> => {
    const header = req.headers.authorization;
    authorizations.push(header);
    if (req.method === 'POST' && header !== undefined) posts++;
    let claims: JWTPayload;
    try {
      if (header === undefined || !header.startsWith('Bearer ')) throw new Error('no token');
      if (refusing || revoked.has(header.slice(7))) throw new Error('token revoked');
      ({ payload: claims } = await jwtVerify(header.slice(7), jwks, { issuer, audience: options.resource ?? url }));
    } catch (err) {
      const challenge = options.metadata === false ? 'Bearer' : `Bearer resource_metadata="${new URL(url).origin}${metadataPath}"${header === undefined ? '' : `, error="invalid_token", error_description="${(err as Error).message.replace(/"/g, '')}"`}`;
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_token' }));
      return undefined;
    }
    const granted = String(claims.scope ?? '').split(' ');
    if (options.requireScope !== undefined && !granted.includes(options.requireScope)) {
      const scope = [...new Set([...(options.scopes ?? ['mcp:read']), options.requireScope])].join(' ');
      res.writeHead(403, { 'www-authenticate': `Bearer error="insufficient_scope", scope="${scope}", resource_metadata="${new URL(url).origin}${metadataPath}"`, 'content-type': 'application/json' }).end('{"error":"insufficient_scope"}');
      return undefined;
    }
    seen.add(header.slice(7));
    accepted.push(claims);
    return claims;
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = new URL(req.url ?? '/', 'http://x');
    if (target.pathname === metadataPath && options.metadata !== false) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ resource: options.resource ?? url, authorization_servers: [issuer], scopes_supported: options.scopes ?? ['mcp:read'] }));
      return;
    }
    if (options.sse === true && req.method === 'POST' && target.pathname === '/messages') {
      const transport = sse.get(target.searchParams.get('sessionId') ?? '');
      if (transport === undefined) return void res.writeHead(404).end();
      if ((await check(req, res)) === undefined) return;
      return transport.handlePostMessage(req, res);
    }
    if (target.pathname !== mcpPath) return void res.writeHead(404).end();
    const claims = await check(req, res);
    if (claims === undefined) return;
    if (options.sse === true) {
      const transport = new SSEServerTransport('/messages', res);
      sse.set(transport.sessionId, transport);
      res.on('close', () => sse.delete(transport.sessionId));
      await mcpServer(claims).connect(transport);
      return;
    }
    if (options.modern === true) return serveModern(req, res, claims);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void transport.close());
    await mcpServer(claims).connect(transport);
    await transport.handleRequest(req, res);
  };
  const http: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => http.listen(options.port ?? 0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}${mcpPath}`;
  return {
    url,
    accepted,
    authorizations,
    posts: () => posts,
    revokeAccepted() {
      for (const token of seen) revoked.add(token);
    },
    refuseAll(on) {
      refusing = on;
    },
    async stop() {
      await modern.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
