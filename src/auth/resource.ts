import type { IncomingMessage } from 'node:http';

// berth as an OAuth protected resource (RFC 9728): every route is a resource
// of its own, named by the URL its clients use. Clients compare that URL with
// the metadata's `resource` byte for byte, so both come from here.

export const PRM_PREFIX = '/.well-known/oauth-protected-resource';

/** The route a request path belongs to and the path of its resource URL. */
export interface ResourceTarget {
  readonly server: string;
  /** `/mcp/<server>` (or `/mcp/<server>/mcp`, as the client wrote it), `/sse/<server>` for legacy SSE. */
  readonly path: string;
}

const ROUTE_PATH = /^\/(mcp|sse)\/([^/]+)(\/[^/]*)?$/;

export function targetOf(pathname: string): ResourceTarget | undefined {
  const match = ROUTE_PATH.exec(pathname);
  if (match === null) return undefined;
  const [, kind = '', server = '', sub] = match;
  return { server, path: kind === 'mcp' && sub === '/mcp' ? pathname : `/${kind}/${server}` };
}

/**
 * Where berth is reached: `listen.publicUrl` without a trailing slash (TLS is
 * usually terminated in front of berth), else the Host the request came on.
 */
export function baseUrl(publicUrl: string | undefined, req: IncomingMessage): string {
  if (publicUrl !== undefined) return publicUrl.replace(/\/+$/, '');
  const host = req.headers.host;
  return `http://${host !== undefined && /^[A-Za-z0-9.[\]:-]{1,255}$/.test(host) ? host : 'localhost'}`;
}

// A server's own pages (/connect/<server>, /api/credentials/<server>, see
// credentials/routes.ts) belong to its resource: a token for the route is good there.
const PAGE_PATH = /^\/(?:connect|api\/credentials)\/([^/]+)(?:\/[^/]*)?$/;

/** The audiences a token may carry on a request that is not an MCP route: berth's own URL, and on a server's pages that route's URL. */
export function pageAudiences(base: string, pathname: string): string[] {
  const server = PAGE_PATH.exec(pathname)?.[1];
  return server === undefined ? [base] : [base, `${base}/mcp/${server}`];
}

/** The audiences a token may carry on this route: the URL the client used and the route's canonical one. */
export function audiencesOf(base: string, target: ResourceTarget | undefined): string[] {
  if (target === undefined) return [base];
  const canonical = `${base}/mcp/${target.server}`;
  return target.path === `/mcp/${target.server}` ? [canonical] : [`${base}${target.path}`, canonical];
}

/** The path-inserted metadata URL of a resource: origin, the well-known prefix, then the resource's path. */
export function metadataUrl(base: string, target: ResourceTarget): string {
  const url = new URL(base);
  return `${url.origin}${PRM_PREFIX}${url.pathname.replace(/\/$/, '')}${target.path}`;
}

/** The resource a metadata request asks about, with publicUrl's own path (if any) taken off. */
export function metadataTarget(pathname: string, publicUrl: string | undefined): ResourceTarget | undefined {
  let rest = pathname.slice(PRM_PREFIX.length);
  const basePath = publicUrl === undefined ? '' : new URL(publicUrl).pathname.replace(/\/$/, '');
  if (basePath !== '' && rest.startsWith(`${basePath}/`)) rest = rest.slice(basePath.length);
  return targetOf(rest);
}

/** RFC 9728 metadata of one route. */
export function protectedResourceMetadata(base: string, target: ResourceTarget, issuers: readonly string[], scopes: readonly string[]): Record<string, unknown> {
  return {
    resource: `${base}${target.path}`,
    authorization_servers: issuers,
    ...(scopes.length === 0 ? {} : { scopes_supported: scopes }),
    bearer_methods_supported: ['header'],
    resource_name: target.server,
  };
}

/** `WWW-Authenticate: Bearer …` per RFC 6750 and RFC 9728. */
export function bearerChallenge(params: { resourceMetadata?: string; scopes?: readonly string[]; error?: string; description?: string }): string {
  const parts: string[] = [];
  if (params.resourceMetadata !== undefined) parts.push(`resource_metadata="${params.resourceMetadata}"`);
  if (params.scopes !== undefined && params.scopes.length > 0) parts.push(`scope="${params.scopes.join(' ')}"`);
  if (params.error !== undefined) parts.push(`error="${params.error}"`);
  if (params.description !== undefined) parts.push(`error_description="${params.description.replace(/["\\]/g, '')}"`);
  return parts.length === 0 ? 'Bearer realm="berth"' : `Bearer ${parts.join(', ')}`;
}
