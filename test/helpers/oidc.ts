// A real OAuth authorization server for tests: oidc-provider on 127.0.0.1,
// with client credentials and resource indicators, minting JWT access tokens
// whose `aud` is the resource the client asked for (berth's route URL).
// `interactive` adds dynamic client registration and the provider's dev
// login and consent pages, which `signIn` fills in the way a person would.

import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

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
  /** When set, access tokens are minted for this audience instead of the resource asked for: an issuer that ignores resource indicators. */
  audienceOf: ((resource: string) => string) | undefined;
  /** Serves a new signing key first (the old one still listed): a key rotation. */
  rotate(): Promise<JWK>;
  /** Drops a dynamically registered client, as a server that lost its registrations would. */
  forgetClient(clientId: string): Promise<void>;
  stop(): Promise<void>;
}

export async function signingKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

export interface IssuerOptions {
  /** Dynamic client registration and the dev login/consent pages, for the authorization-code flow. */
  readonly interactive?: boolean;
  /** Lifetime of access tokens for resources, in seconds (default 600). */
  readonly accessTokenTtl?: number;
  /** Refresh tokens for clients that may use them, rotated on each use; revocation. */
  readonly refresh?: boolean;
  /** Pre-registered authorization-code clients (berth's static client). */
  readonly clients?: readonly Record<string, unknown>[];
  /** Resources the server refuses as resource indicators (RFC 8707 invalid_target). */
  readonly refuseResource?: (resource: string) => boolean;
  /** Rewrites the discovery document before it is served (e.g. to drop S256). */
  readonly metadata?: (doc: Record<string, unknown>) => Record<string, unknown>;
}

export async function startIssuer(options: IssuerOptions = {}): Promise<TestIssuer> {
  const interactive = options.interactive === true;
  const hits = new Map<string, number>();
  let provider: Provider | undefined;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (options.metadata !== undefined && path.startsWith('/.well-known/') && req.headers['x-test-inner'] === undefined) return void rewriteMetadata(path, res, options.metadata);
    void provider!.callback()(req, res);
  });
  // The provider's own discovery document, edited by the test.
  const rewriteMetadata = async (path: string, res: ServerResponse, edit: (doc: Record<string, unknown>) => Record<string, unknown>): Promise<void> => {
    const inner = await fetch(`${issuer}${path}`, { headers: { 'x-test-inner': '1' } }).catch(() => undefined);
    if (inner === undefined || !inner.ok) return void res.writeHead(inner?.status ?? 502).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(edit((await inner.json()) as Record<string, unknown>)));
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const keys = [await signingKey('key-1')];
  const build = (): Provider => {
    const p = new Provider(issuer, {
      clients: [
        { client_id: CLIENT.id, client_secret: CLIENT.secret, grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: SCOPES.join(' ') },
        // berth itself, for introspection.
        { client_id: INTROSPECTOR.id, client_secret: INTROSPECTOR.secret, grant_types: [], redirect_uris: [], response_types: [] },
        ...((options.clients ?? []) as never[]),
      ],
      ...(options.refresh === true ? { issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed('refresh_token'), rotateRefreshToken: true } : {}),
      scopes: SCOPES,
      ttl: { ClientCredentials: 600, AccessToken: options.accessTokenTtl ?? 600, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
      // Whoever signs in at the dev pages is the account named by the login.
      findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
      // Group membership for berth's groups claim.
      extraTokenClaims: () => ({ groups: ['eng'] }),
      jwks: { keys: keys as never },
      features: {
        // Any login and password sign in; the account id is the login.
        devInteractions: { enabled: interactive },
        registration: { enabled: interactive },
        clientCredentials: { enabled: true },
        introspection: { enabled: true },
        revocation: { enabled: options.refresh === true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined as never,
          useGrantedResource: () => true,
          // Resources whose path names `opaque` get opaque tokens, checked by introspection.
          getResourceServerInfo: (_ctx, resource) => {
            if (options.refuseResource?.(resource) === true) throw new errors.InvalidTarget(`${resource} is not a resource of this server`);
            return resource.includes('opaque')
              ? { scope: SCOPES.join(' '), accessTokenFormat: 'opaque', accessTokenTTL: 600 }
              : { scope: SCOPES.join(' '), accessTokenFormat: 'jwt', accessTokenTTL: options.accessTokenTtl ?? 600, jwt: { sign: { alg: 'RS256' } }, ...(issuerObject.audienceOf === undefined ? {} : { audience: issuerObject.audienceOf(resource) }) };
          },
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
    audienceOf: undefined,
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
    async forgetClient(clientId) {
      await (provider!.Client as unknown as { adapter: { destroy(id: string): Promise<void> } }).adapter.destroy(clientId);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return issuerObject;
}

const MAX_HOPS = 20;

/** The authorization URL on berth's "continue to the authorization server" page (its link, HTML-escaped). */
export function continueUrl(page: string): string | undefined {
  const href = /<a id="continue" href="([^"]+)"/.exec(page)?.[1];
  return href?.replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code)));
}

/**
 * Plays the person at the authorization server's dev pages: follows its
 * redirects with a cookie jar, signs in as `login` (any password), consents,
 * and stops at the redirect back to the client, which it returns (with
 * `code` and `state`). Plain HTTP: every page is a form that posts.
 */
export async function signIn(authorizationUrl: URL, login: string, redirectUri: string): Promise<URL> {
  const jar = new CookieJar();
  let url = authorizationUrl;
  let body: URLSearchParams | undefined;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const res = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header(url), ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
      ...(body === undefined ? {} : { body }),
    });
    jar.store(url, res.headers.getSetCookie());
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location !== null) {
      await res.arrayBuffer();
      url = new URL(location, url);
      body = undefined;
      if (url.href.startsWith(redirectUri)) return url;
      continue;
    }
    const page = await res.text();
    if (res.status !== 200) throw new Error(`${url.pathname}: HTTP ${res.status}: ${page.slice(0, 500)}`);
    const form = /<form[^>]*action="([^"]+)"[^>]*method="post"/.exec(page);
    if (form === null) throw new Error(`${url.pathname}: no form to fill in: ${page.slice(0, 500)}`);
    body = new URLSearchParams([...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m): [string, string] => [m[1]!, m[2]!]));
    if (body.get('prompt') === 'login') {
      body.set('login', login);
      body.set('password', 'any password');
    }
    url = new URL(form[1]!.replaceAll('&amp;', '&'), url);
  }
  throw new Error(`no redirect to ${redirectUri} after ${MAX_HOPS} pages`);
}

/** Cookies by name, sent back on the paths they were set for (enough for one host). */
class CookieJar {
  readonly #cookies = new Map<string, { value: string; path: string }>();

  store(url: URL, setCookies: readonly string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';').map((p) => p.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const path = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? url.pathname;
      const expired = pair.slice(eq + 1) === '' || attributes.some((a) => /^max-age=0$/i.test(a) || (/^expires=/i.test(a) && Date.parse(a.slice(8)) < Date.now()));
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, { value: pair.slice(eq + 1), path });
    }
  }

  header(url: URL): string {
    return [...this.#cookies].filter(([, c]) => url.pathname.startsWith(c.path)).map(([name, c]) => `${name}=${c.value}`).join('; ');
  }
}
