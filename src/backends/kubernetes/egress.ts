import type { Cidr } from '../../net/cidr.ts';
import { containsCidr, parseCidr } from '../../net/cidr.ts';

/**
 * Ranges a server pod never reaches through a broader declared CIDR: private
 * and shared address space, loopback, link-local (where cloud metadata
 * endpoints live: 169.254.169.254, fd00:ec2::254 is in the ULA block),
 * documentation, multicast and other reserved blocks. Declaring one of them,
 * or a block inside one, allows exactly that. No IPv4-mapped block
 * (::ffff:0:0/96): the API server refuses one in a NetworkPolicy, and a pod
 * dialling such an address sends IPv4, which the IPv4 ranges cover.
 */
export const REFUSED_RANGES: readonly string[] = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.0.2.0/24', '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24',
  '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
  '::/128', '::1/128', '64:ff9b::/96', '64:ff9b:1::/48', '100::/64', '2001:db8::/32',
  'fc00::/7', 'fe80::/10', 'ff00::/8',
];

const refused: readonly { readonly text: string; readonly cidr: Cidr }[] = REFUSED_RANGES.map((text) => ({ text, cidr: parseCidr(text) as Cidr }));

/** One NetworkPolicy ipBlock: a declared CIDR minus the refused ranges strictly inside it. */
export interface IpBlock {
  readonly cidr: string;
  readonly except?: readonly string[];
}

/** The ipBlocks for declared CIDRs (already checked by config validation), sorted for stable output. */
export function egressBlocks(declared: readonly string[]): IpBlock[] {
  return [...new Set(declared)].sort().map((text) => {
    const cidr = parseCidr(text);
    if (cidr === undefined) throw new Error(`egress CIDR ${text} passed validation but does not parse`);
    // Kubernetes requires every `except` strictly inside `cidr`; a declared block
    // inside (or equal to) a refused range is an explicit allowance and keeps nothing out.
    const except = refused.filter((r) => containsCidr(cidr, r.cidr) && r.cidr.prefix > cidr.prefix).map((r) => r.text);
    return except.length === 0 ? { cidr: text } : { cidr: text, except };
  });
}
