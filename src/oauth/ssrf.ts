import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { BerthError } from '../errors.ts';

// The SSRF guard: every URL berth fetches on an upstream's say-so (metadata,
// registration, token and revocation endpoints, each redirect hop) must name a
// public address, unless the server's config allows private networks.

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

const MAX_HOPS = 5;
const TIMEOUT_MS = 10_000;

/** Whether an address is one berth refuses to reach by default. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return BLOCKED.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Refuses a URL that is not https (http only where private networks are allowed) or whose host resolves to a refused address. */
export async function checkUrl(url: URL, policy: FetchPolicy): Promise<void> {
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowPrivateNetworks)) {
    throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: OAuth endpoints must be https (plain http only with oauth.allowPrivateNetworks)`);
  }
  if (url.username !== '' || url.password !== '') throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: a URL with credentials in it`);
  if (policy.allowPrivateNetworks) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true, verbatim: true }).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: its host does not resolve`);
  const blocked = addresses.find(isBlockedAddress);
  if (blocked !== undefined) {
    throw new BerthError('oauth_url_refused', `refused to fetch ${url.origin}: it resolves to ${blocked}, a loopback, private, link-local or reserved address (set oauth.allowPrivateNetworks on the server to allow it)`);
  }
}

/**
 * fetch with the guard on the URL and on every redirect hop (GET only; a
 * POST that is redirected fails), bounded in hops and time.
 */
export async function guardedFetch(input: string | URL, init: RequestInit, policy: FetchPolicy): Promise<Response> {
  let url = new URL(input);
  const signal = init.signal === undefined || init.signal === null ? AbortSignal.timeout(TIMEOUT_MS) : AbortSignal.any([init.signal, AbortSignal.timeout(TIMEOUT_MS)]);
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    await checkUrl(url, policy);
    const res = await fetch(url, { ...init, redirect: 'manual', signal });
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || location === null) return res;
    await res.body?.cancel();
    if ((init.method ?? 'GET') !== 'GET') throw new BerthError('oauth_url_refused', `${url.origin} answered a ${init.method} with a redirect; OAuth endpoints must answer directly`);
    url = new URL(location, url);
  }
  throw new BerthError('oauth_url_refused', `more than ${MAX_HOPS} redirects from ${new URL(input).origin}`);
}
