// A real OAuth authorization server for tests: oidc-provider on 127.0.0.1,
// with client credentials and resource indicators, minting JWT access tokens
// whose `aud` is the resource the client asked for (berth's route URL).

import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export const SCOPES = ['mcp:read', 'mcp:write'];
export const CLIENT = { id: 'agent', secret: 'agent-secret-agent-secret' };
export const INTROSPECTOR = { id: 'berth', secret: 'berth-secret-berth-secret' };

export interface TestIssuer {
  readonly issuer: string;
  /** Requests the server answered, by path; e.g. how often the JWKS was fetched. */
  readonly hits: Map<string, number>;
  /** The private signing keys, newest first; tests mint odd tokens with them. */
  keys: JWK[];
  /** A client_credentials access token for `resource` with `scope`. */
  token(resource: string, scope?: string): Promise<string>;
  /** Serves a new signing key first (the old one still listed): a key rotation. */
  rotate(): Promise<JWK>;
  stop(): Promise<void>;
}

export async function signingKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

export async function startIssuer(): Promise<TestIssuer> {
  const hits = new Map<string, number>();
  let provider: Provider | undefined;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    void provider!.callback()(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const keys = [await signingKey('key-1')];
  const build = (): Provider => {
    const p = new Provider(issuer, {
      clients: [
        { client_id: CLIENT.id, client_secret: CLIENT.secret, grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: SCOPES.join(' ') },
        // berth itself, for introspection.
        { client_id: INTROSPECTOR.id, client_secret: INTROSPECTOR.secret, grant_types: [], redirect_uris: [], response_types: [] },
      ],
      scopes: SCOPES,
      ttl: { ClientCredentials: 600 },
      // Group membership for berth's groups claim.
      extraTokenClaims: () => ({ groups: ['eng'] }),
      jwks: { keys: keys as never },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined as never,
          useGrantedResource: () => true,
          // Resources whose path names `opaque` get opaque tokens, checked by introspection.
          getResourceServerInfo: (_ctx, resource) =>
            resource.includes('opaque') ? { scope: SCOPES.join(' '), accessTokenFormat: 'opaque', accessTokenTTL: 600 } : { scope: SCOPES.join(' '), accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } } },
        },
      },
    });
    return p;
  };
  provider = build();
  const issuerObject: TestIssuer = {
    issuer,
    hits,
    keys,
    async token(resource, scope = SCOPES.join(' ')) {
      const response = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
      });
      const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
      if (body.access_token === undefined) throw new Error(`token request failed: ${body.error ?? response.status} ${body.error_description ?? ''}`);
      return body.access_token;
    },
    async rotate() {
      const key = await signingKey(`key-${keys.length + 1}`);
      keys.unshift(key);
      provider = build();
      return key;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return issuerObject;
}
