// A real MCP server (the SDK's, streamable HTTP, stateless) that takes only
// bearer tokens from a test issuer whose audience is this server's URL, the
// way a remote such as GitHub's or Linear's would: a 401 with a Bearer
// challenge naming its protected-resource metadata (RFC 9728) otherwise.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

export interface ProtectedServer {
  readonly url: string;
  /** Every token the server accepted, decoded; and every Authorization header it saw. */
  readonly accepted: JWTPayload[];
  readonly authorizations: (string | undefined)[];
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
}

export async function startProtectedServer(issuer: string, options: ProtectedOptions = {}): Promise<ProtectedServer> {
  const accepted: JWTPayload[] = [];
  const authorizations: (string | undefined)[] = [];
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  let url = '';
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    const metadataPath = '/.well-known/oauth-protected-resource/mcp';
    if (path === metadataPath && options.metadata !== false) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ resource: options.resource ?? url, authorization_servers: [issuer], scopes_supported: options.scopes ?? ['mcp:read'] }));
      return;
    }
    if (path !== '/mcp') return void res.writeHead(404).end();
    const header = req.headers.authorization;
    authorizations.push(header);
    let claims: JWTPayload;
    try {
      if (header === undefined || !header.startsWith('Bearer ')) throw new Error('no token');
      ({ payload: claims } = await jwtVerify(header.slice(7), jwks, { issuer, audience: url }));
    } catch (err) {
      const challenge = options.metadata === false ? 'Bearer' : `Bearer resource_metadata="${new URL(url).origin}${metadataPath}"${header === undefined ? '' : `, error="invalid_token", error_description="${(err as Error).message.replace(/"/g, '')}"`}`;
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_token' }));
      return;
    }
    const granted = String(claims.scope ?? '').split(' ');
    if (options.requireScope !== undefined && !granted.includes(options.requireScope)) {
      const scope = [...new Set([...(options.scopes ?? ['mcp:read']), options.requireScope])].join(' ');
      res.writeHead(403, { 'www-authenticate': `Bearer error="insufficient_scope", scope="${scope}", resource_metadata="${new URL(url).origin}${metadataPath}"`, 'content-type': 'application/json' }).end('{"error":"insufficient_scope"}');
      return;
    }
    accepted.push(claims);
    const server = new McpServer({ name: 'protected', version: '1.0.0' });
    server.registerTool('whoami', { description: 'The token subject' }, () => ({ content: [{ type: 'text', text: `sub=${String(claims.sub)} aud=${String(claims.aud)}` }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void transport.close());
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };
  const http: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  return {
    url,
    accepted,
    authorizations,
    async stop() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
