import { isIP, isIPv4, isIPv6 } from 'node:net';

/** An address block: family, the network address as a number, and the prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly prefix: number;
}

/** Why `text` is not an IP address or an address block (`10.0.0.0/8`, `::1`), or undefined when it is one. */
export function addressOrCidrProblem(text: string): string | undefined {
  const [address = '', bits] = text.split('/');
  const family = isIP(address);
  if (family === 0) return `${text} is not an IP address or CIDR`;
  const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) return `${text} has an invalid prefix length`;
  return undefined;
}

/** True for 127.0.0.0/8 and ::1 (also as an IPv4-mapped address). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(a) === 4) return a.startsWith('127.');
  return a === '::1';
}

/** Parses `203.0.113.0/24` or `2001:db8::/32`; host bits must be zero, as Kubernetes requires. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined;
  if (family === undefined || prefix > width(family)) return undefined;
  const network = family === 4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
  if ((network & hostMask(family, prefix)) !== 0n) return undefined;
  return { family, network, prefix };
}

/** True when `inner` lies within `outer` (equal blocks included). */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const mask = ((1n << BigInt(width(outer.family))) - 1n) ^ hostMask(outer.family, outer.prefix);
  return (inner.network & mask) === outer.network;
}

function width(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

function hostMask(family: 4 | 6, prefix: number): bigint {
  return (1n << BigInt(width(family) - prefix)) - 1n;
}

function ipv4ToBigInt(address: string): bigint {
  return address.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function ipv6ToBigInt(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1] !== undefined) {
    const n = ipv4ToBigInt(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(`0x${group}`), 0n);
}
