import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { isLoopbackAddress } from '../net/cidr.ts';

/** Who may call berth from a browser, and under which Host names. */
export interface OriginPolicy {
  /** Host names (no port) a request may name; any other is a DNS-rebinding attempt or a mistake. */
  readonly hosts: ReadonlySet<string>;
  /** Browser origins admitted and answered with CORS headers (listen.allowedOrigins, publicUrl's origin). */
  readonly allowedOrigins: ReadonlySet<string>;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** This machine's names and addresses, for a berth bound to every interface. */
export function localHostNames(): string[] {
  const addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  return [hostname(), ...addresses];
}

/**
 * The Host names berth answers to: its own listen address, publicUrl's host,
 * and loopback names when bound to loopback or to every interface. The
 * check is never switched off, so a rebinding page is refused whatever the
 * listen address.
 */
export function originPolicy(
  listen: { host: string; publicUrl?: string; allowedOrigins?: readonly string[] },
  local: () => readonly string[] = localHostNames,
): OriginPolicy {
  const any = listen.host === '0.0.0.0' || listen.host === '::' || listen.host === '';
  const hosts = new Set(any ? [] : [hostForm(listen.host)]);
  const allowedOrigins = new Set(listen.allowedOrigins ?? []);
  if (listen.publicUrl !== undefined) {
    const url = new URL(listen.publicUrl);
    hosts.add(url.hostname.toLowerCase());
    allowedOrigins.add(url.origin);
  }
  if (any || isLoopbackAddress(listen.host) || listen.host === 'localhost') for (const name of LOOPBACK_NAMES) hosts.add(name);
  if (any) for (const name of local()) hosts.add(hostForm(name));
  return { hosts, allowedOrigins };
}

/** A reason to refuse the request with 403, or undefined when its Host may be served. */
export function checkHost(req: IncomingMessage, policy: OriginPolicy): string | undefined {
  const host = hostName(req.headers.host);
  // HTTP/1.0 clients may omit Host; browsers, the rebinding vector, always send it.
  if (host === undefined || policy.hosts.has(host)) return undefined;
  return `Host ${host} is not allowed: berth answers to ${[...policy.hosts].join(', ')} (DNS rebinding protection); set listen.publicUrl for another name`;
}

/** A reason to refuse the request with 403, or undefined when its Origin (if any) is admitted. */
export function checkOrigin(req: IncomingMessage, policy: OriginPolicy): string | undefined {
  const origin = req.headers.origin;
  if (origin === undefined || policy.allowedOrigins.has(origin)) return undefined;
  let originHost: string;
  try {
    originHost = new URL(origin).hostname.toLowerCase();
  } catch {
    return `Origin ${origin} is not allowed`;
  }
  // A page served from this host is as trusted as a local process.
  if (LOOPBACK_NAMES.includes(originHost) || LOOPBACK_NAMES.includes(`[${originHost}]`)) return undefined;
  return `Origin ${origin} is not allowed; add it to listen.allowedOrigins`;
}

/** The request headers MCP clients send; a browser may send these cross-origin. */
const CORS_REQUEST_HEADERS = 'content-type, accept, authorization, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name, x-request-id';
/** The response headers a browser client must read. */
const CORS_EXPOSED_HEADERS = 'Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate';
/** How long a browser may reuse a preflight answer (Chromium caps it at 2 h). */
const CORS_MAX_AGE_S = '7200';

/** Headers for every response to an allowed origin; none for other requests. */
export function corsHeaders(req: IncomingMessage, policy: OriginPolicy): Readonly<Record<string, string>> | undefined {
  const origin = req.headers.origin;
  if (origin === undefined || !policy.allowedOrigins.has(origin)) return undefined;
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': CORS_EXPOSED_HEADERS, vary: 'Origin' };
}

/** A CORS preflight: OPTIONS from a browser asking whether it may send the real request. */
export function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined;
}

/** The preflight answer's extra headers (beside corsHeaders). */
export const PREFLIGHT_HEADERS: Readonly<Record<string, string>> = {
  'access-control-allow-methods': 'GET, POST, DELETE',
  'access-control-allow-headers': CORS_REQUEST_HEADERS,
  'access-control-max-age': CORS_MAX_AGE_S,
};

function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const h = header.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

/** A name or address as it appears in a Host header: IPv6 literals in brackets. */
function hostForm(name: string): string {
  const n = name.toLowerCase();
  return isIP(n) === 6 ? `[${n}]` : n;
}

