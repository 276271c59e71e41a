import { BlockList, isIP } from 'node:net';

// Link-local and cloud metadata addresses: an instance's credentials live
// there (169.254.169.254, AWS's IPv6 fd00:ec2::254). A URL in the config
// pointing at one is refused unless the operator says it is meant.
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');
LINK_LOCAL.addAddress('fd00:ec2::254', 'ipv6');
// The same IPv4 addresses written as IPv4-mapped IPv6.
LINK_LOCAL.addSubnet('::ffff:169.254.0.0', 112, 'ipv6');
const METADATA_NAMES: ReadonlySet<string> = new Set(['metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

/** The host of `url` when it is a link-local or metadata address (any spelling the URL parser accepts), else undefined. */
export function linkLocalHostOf(url: string): string | undefined {
  let host: string;
  try {
    // The URL parser normalises decimal, octal and hex IPv4 forms (http://2852039166/) to dotted quads.
    host = new URL(url).hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  } catch {
    return undefined;
  }
  if (METADATA_NAMES.has(host)) return host;
  const family = isIP(host);
  if (family === 0) return undefined;
  return LINK_LOCAL.check(host, family === 6 ? 'ipv6' : 'ipv4') ? host : undefined;
}
