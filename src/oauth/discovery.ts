import { BerthError } from '../errors.ts';
import type { FetchPolicy } from './ssrf.ts';
import { guardedFetch } from './ssrf.ts';

// Discovery as an MCP client (authorization spec 2025-11-25): protected-resource
// metadata (RFC 9728) names the authorization server, whose metadata (RFC 8414,
// else OpenID discovery) must carry the very issuer the URL was built from.

/** What an upstream's `WWW-Authenticate: Bearer` said. */
export interface Challenge {
  readonly resourceMetadata?: string;
  readonly scope?: string;
  readonly error?: string;
}

/** The authorization server metadata berth uses. */
export interface AuthServerMetadata {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly registration_endpoint?: string;
  readonly revocation_endpoint?: string;
  readonly code_challenge_methods_supported?: readonly string[];
  readonly scopes_supported?: readonly string[];
  readonly token_endpoint_auth_methods_supported?: readonly string[];
  readonly client_id_metadata_document_supported?: boolean;
  readonly authorization_response_iss_parameter_supported?: boolean;
}

/** Where a server's authorization stands once discovered. */
export interface Discovery {
  /** The `resource` berth asks tokens for (RFC 8707). */
  readonly resource: string;
  readonly as: AuthServerMetadata;
  /** The resource metadata's `scopes_supported`, when it has one. */
  readonly scopesSupported?: readonly string[];
}

/** Parses `Bearer k="v", k2=v2` (RFC 6750 / RFC 9728); undefined for another scheme. */
export function parseBearerChallenge(header: string | undefined): Challenge | undefined {
  if (header === undefined || !/^\s*bearer\b/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const m of header.replace(/^\s*bearer\s*/i, '').matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[m[1]!.toLowerCase()] = m[2] === undefined ? (m[3] ?? '') : m[2].replace(/\\(.)/g, '$1');
  }
  return { ...(params.resource_metadata === undefined ? {} : { resourceMetadata: params.resource_metadata }), ...(params.scope === undefined ? {} : { scope: params.scope }), ...(params.error === undefined ? {} : { error: params.error }) };
}

interface ResourceMetadata {
  readonly resource?: unknown;
  readonly authorization_servers?: unknown;
  readonly scopes_supported?: unknown;
}

/**
 * Discovers a server's authorization: its resource metadata (the challenge's
 * `resource_metadata`, then the path-inserted and root well-known URLs), then
 * its authorization server's metadata. A server without resource metadata (the
 * 2025-03-26 era) gets the authorization server at its own origin.
 */
export async function discover(serverUrl: string, challenge: Challenge | undefined, configuredIssuer: string | undefined, policy: FetchPolicy, hosted = false): Promise<Discovery> {
  const server = new URL(serverUrl);
  // A hosted instance is at an address berth chose (loopback, a container's): metadata at its own origin
  // is read there whatever the guard says of private networks, and names the resource the server is known as.
  const prm = await resourceMetadata(server, challenge, policy, hosted);
  if (prm === undefined) {
    const issuer = configuredIssuer ?? server.origin;
    return { resource: canonicalResource(server), as: (await authServerMetadata(issuer, policy)) ?? legacyDefaults(issuer) };
  }
  const resource = typeof prm.resource === 'string' ? prm.resource : '';
  if (hosted ? !URL.canParse(resource) : !sameResource(resource, server)) {
    throw new BerthError('oauth_resource_mismatch', `the resource metadata of ${server.href} names another resource (${resource || 'none'}); berth stops rather than get a token for it`);
  }
  const servers = Array.isArray(prm.authorization_servers) ? prm.authorization_servers.filter((s): s is string => typeof s === 'string') : [];
  const issuer = configuredIssuer ?? servers[0];
  if (issuer === undefined) throw new BerthError('oauth_discovery_failed', `the resource metadata of ${server.href} names no authorization server; set oauth.authorizationServer`);
  const as = await authServerMetadata(issuer, policy);
  if (as === undefined) throw new BerthError('oauth_discovery_failed', `the authorization server ${issuer} publishes no metadata (RFC 8414 or OpenID discovery)`);
  const scopes = Array.isArray(prm.scopes_supported) ? prm.scopes_supported.filter((s): s is string => typeof s === 'string') : undefined;
  return { resource, as, ...(scopes === undefined ? {} : { scopesSupported: scopes }) };
}

async function resourceMetadata(server: URL, challenge: Challenge | undefined, policy: FetchPolicy, hosted: boolean): Promise<ResourceMetadata | undefined> {
  const path = server.pathname.replace(/\/$/, '');
  const urls = [
    ...(challenge?.resourceMetadata === undefined ? [] : [new URL(challenge.resourceMetadata, server).href]),
    ...(path === '' ? [] : [`${server.origin}/.well-known/oauth-protected-resource${path}`]),
    `${server.origin}/.well-known/oauth-protected-resource`,
  ];
  for (const url of urls) {
    const doc = await getJson(url, hosted && new URL(url).origin === server.origin ? { ...policy, allowPrivateNetworks: true } : policy);
    if (doc !== undefined) return doc as ResourceMetadata;
  }
  return undefined;
}

/** RFC 8414 then OpenID discovery, path-inserted forms first; the metadata's issuer must be the one asked about. */
export async function authServerMetadata(issuer: string, policy: FetchPolicy): Promise<AuthServerMetadata | undefined> {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/$/, '');
  const candidates =
    path === ''
      ? [`${url.origin}/.well-known/oauth-authorization-server`, `${url.origin}/.well-known/openid-configuration`]
      : [`${url.origin}/.well-known/oauth-authorization-server${path}`, `${url.origin}/.well-known/openid-configuration${path}`, `${url.origin}${path}/.well-known/openid-configuration`];
  for (const candidate of candidates) {
    const doc = (await getJson(candidate, policy)) as Partial<AuthServerMetadata> | undefined;
    if (doc === undefined) continue;
    if (doc.issuer !== issuer) throw new BerthError('oauth_issuer_mismatch', `the metadata at ${candidate} names issuer ${String(doc.issuer)}, not ${issuer}; berth refuses an authorization server that answers for another`);
    if (typeof doc.authorization_endpoint !== 'string' || typeof doc.token_endpoint !== 'string') {
      throw new BerthError('oauth_discovery_failed', `the metadata of ${issuer} lacks authorization_endpoint or token_endpoint`);
    }
    return doc as AuthServerMetadata;
  }
  return undefined;
}

/** 2025-03-26: no metadata at all means the default endpoints at the server's origin. */
function legacyDefaults(issuer: string): AuthServerMetadata {
  const origin = new URL(issuer).origin;
  return { issuer, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, registration_endpoint: `${origin}/register`, code_challenge_methods_supported: ['S256'] };
}

/** The server URL as a resource indicator: no fragment, no trailing slash on the path. */
export function canonicalResource(server: URL): string {
  const url = new URL(server.href);
  url.hash = '';
  return url.href.replace(/\/$/, '');
}

/** The metadata's resource is the server's URL, or a path-prefix of it on the same origin. */
function sameResource(resource: string, server: URL): boolean {
  if (!URL.canParse(resource)) return false;
  const r = new URL(resource);
  if (r.origin !== server.origin) return false;
  const prefix = r.pathname.replace(/\/$/, '');
  const path = server.pathname.replace(/\/$/, '');
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** A JSON object at `url`, or undefined when it is not there (4xx); other failures throw. */
async function getJson(url: string, policy: FetchPolicy): Promise<Record<string, unknown> | undefined> {
  const res = await guardedFetch(url, { headers: { accept: 'application/json', 'mcp-protocol-version': '2025-11-25' } }, policy);
  if (res.status >= 400 && res.status < 500) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new BerthError('oauth_discovery_failed', `${url} answered HTTP ${res.status}`);
  }
  const body: unknown = await res.json().catch(() => undefined);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BerthError('oauth_discovery_failed', `${url} did not answer a JSON object`);
  return body as Record<string, unknown>;
}
