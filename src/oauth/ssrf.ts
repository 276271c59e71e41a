import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { BerthError } from '../errors.ts';

// The SSRF guard: every URL berth fetches on an upstream's say-so (metadata,
// registration, token and revocation endpoints, each redirect hop) must name a
// public address, unless the server's config allows private networks. The host
// is resolved once, and the connection goes to the very addresses checked: a
// DNS answer that changes in between (rebinding) is never asked for.

/** Ranges no upstream may send berth to by default: loopback, private, link-local (cloud metadata), reserved. */
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 3],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 127], ['64:ff9b::', 96], ['100::', 64], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv6');

export interface FetchPolicy {
  /** Loopback and private addresses (and plain http) allowed: the server's `oauth.allowPrivateNetworks`. */
  readonly allowPrivateNetworks: boolean;
}

/** One address a host resolved to. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to all its addresses (the system resolver unless a test brings its own). */
export type Resolve = (host: string) => Promise<readonly ResolvedAddress[]>;

const systemResolve: Resolve = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

/** What berth sends: a GET, or a POST of a form or JSON. */
export interface GuardedInit {
  readonly method?: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | URLSearchParams;
  readonly signal?: AbortSignal;
}

const MAX_HOPS = 5;
const TIMEOUT_MS = 10_000;

/** Whether an address is one berth refuses to reach by default. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return BLOCKED.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Refuses a URL that is not https (http only where private networks are
 * allowed) or whose host resolves to a refused address; returns the addresses
 * it resolved to, the only ones a connection to it may use.
 */
export async function checkUrl(url: URL, policy: FetchPolicy, resolve: Resolve = systemResolve): Promise<readonly ResolvedAddress[]> {
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowPrivateNetworks)) {
    throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: OAuth endpoints must be https (plain http only with oauth.allowPrivateNetworks)`);
  }
  if (url.username !== '' || url.password !== '') throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: a URL with credentials in it`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const family = isIP(host);
  const addresses = family !== 0 ? [{ address: host, family: family === 6 ? 6 : 4 } as const] : await resolve(host).catch(() => []);
  if (addresses.length === 0) throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: its host does not resolve`);
  const blocked = policy.allowPrivateNetworks ? undefined : addresses.find((a) => isBlockedAddress(a.address));
  if (blocked !== undefined) {
    throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: it resolves to ${blocked.address}, a loopback, private, link-local or reserved address (set oauth.allowPrivateNetworks on the server to allow it)`);
  }
  return addresses;
}

/** A lookup that answers every question with the checked addresses: the connection cannot go anywhere else. */
export function pinnedLookup(addresses: readonly ResolvedAddress[]): LookupFunction {
  return (_host, options, callback) => {
    const first = addresses[0]!;
    if (options.all === true) callback(null, addresses.map((a) => ({ ...a })));
    else callback(null, first.address, first.family);
  };
}

/**
 * fetch with the guard on the URL and on every redirect hop (GET only; a
 * POST that is redirected fails), bounded in hops and time; each connection
 * pinned to the addresses its hop was checked with.
 */
export async function guardedFetch(input: string | URL, init: GuardedInit, policy: FetchPolicy, resolve: Resolve = systemResolve): Promise<Response> {
  let url = new URL(input);
  const signal = init.signal === undefined ? AbortSignal.timeout(TIMEOUT_MS) : AbortSignal.any([init.signal, AbortSignal.timeout(TIMEOUT_MS)]);
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    const res = await send(url, init, await checkUrl(url, policy, resolve), signal);
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || location === null) return res;
    await res.body?.cancel();
    if ((init.method ?? 'GET') !== 'GET') throw new BerthError('oauth_url_refused', `${url.origin} answered a ${init.method} with a redirect; OAuth endpoints must answer directly`);
    url = new URL(location, url);
  }
  throw new BerthError('oauth_url_refused', `more than ${MAX_HOPS} redirects from ${new URL(input).origin}`);
}

/** Statuses whose Response has no body. */
const NULL_BODY = new Set([204, 205, 304]);

/** One HTTP exchange on a fresh connection to the checked addresses (no pooled socket to some earlier address). */
function send(url: URL, init: GuardedInit, addresses: readonly ResolvedAddress[], signal: AbortSignal): Promise<Response> {
  const body = init.body === undefined ? undefined : Buffer.from(init.body.toString());
  const headers = { ...init.headers, ...(body === undefined ? {} : { 'content-length': String(body.length) }) };
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers, lookup: pinnedLookup(addresses), agent: false, signal }, (res: IncomingMessage) => {
      const status = res.statusCode ?? 502;
      const answer = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) answer.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
      if (status < 200 || status > 599) {
        res.destroy();
        return reject(new BerthError('oauth_url_refused', `${url.origin} answered HTTP ${status}, which is no final answer`));
      }
      if (NULL_BODY.has(status)) res.resume();
      resolve(new Response(NULL_BODY.has(status) ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers: answer }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
