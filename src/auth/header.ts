import { BlockList, isIP } from 'node:net';
import { keyOf } from '../identity.ts';
import type { Provider, Verdict } from './provider.ts';
import { listOf, PASS } from './provider.ts';
import { addressOrCidrProblem } from '../net/cidr.ts';

export interface HeaderSettings {
  readonly userHeader?: string;
  readonly groupsHeader?: string;
  readonly trustedProxies?: readonly string[];
  readonly usernamePrefix?: string;
}

const DEFAULT_TRUSTED = ['127.0.0.1/32', '::1/128'];

/**
 * An identity header set by an auth proxy in front of berth (oauth2-proxy, an
 * ingress). Only believed from the proxy's own addresses: anyone else could
 * set the header too, so from elsewhere it is ignored.
 */
export function headerProvider(settings: HeaderSettings): Provider {
  const userHeader = (settings.userHeader ?? 'X-Forwarded-User').toLowerCase();
  const groupsHeader = (settings.groupsHeader ?? 'X-Forwarded-Groups').toLowerCase();
  const trusted = trustedList(settings.trustedProxies ?? DEFAULT_TRUSTED);
  const realm = `header:${userHeader}:`;
  return {
    type: 'header',
    verify(request): Verdict {
      const user = request.headers[userHeader];
      if (typeof user !== 'string' || user.trim() === '') return PASS;
      const address = normalizeAddress(request.remoteAddress);
      if (address === undefined || !trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')) return PASS;
      const name = user.trim();
      return { kind: 'identity', identity: { user: name, key: keyOf(realm, name, settings.usernamePrefix), groups: listOf(request.headers[groupsHeader]), scopes: [], provider: 'header' } };
    },
  };
}

/** A BlockList of CIDRs (or single addresses); throws on one that is not an address. */
export function trustedList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const problem = addressOrCidrProblem(cidr);
    if (problem !== undefined) throw new Error(problem);
    const [address = '', bits] = cidr.split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    list.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** IPv4 peers on a dual-stack socket show as `::ffff:a.b.c.d`; CIDRs are written as plain IPv4. */
export function normalizeAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
