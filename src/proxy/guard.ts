import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/** Who may call berth from a browser, and under which Host names. */
export interface OriginPolicy {
  /** Listening on loopback only: Host must be a loopback name (DNS-rebinding defence). */
  readonly loopback: boolean;
  readonly allowedOrigins: ReadonlySet<string>;
  /** Host names besides loopback ones that are accepted (from publicUrl). */
  readonly extraHosts: ReadonlySet<string>;
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function originPolicy(listen: { host: string; publicUrl?: string; allowedOrigins?: readonly string[] }): OriginPolicy {
  const extraHosts = new Set<string>();
  const allowedOrigins = new Set(listen.allowedOrigins ?? []);
  if (listen.publicUrl !== undefined) {
    const url = new URL(listen.publicUrl);
    extraHosts.add(url.hostname.toLowerCase());
    allowedOrigins.add(url.origin);
  }
  return { loopback: isLoopbackAddress(listen.host) || listen.host === 'localhost', allowedOrigins, extraHosts };
}

/** A reason to refuse the request with 403, or undefined when it may proceed. */
export function checkOrigin(req: IncomingMessage, policy: OriginPolicy): string | undefined {
  const host = hostName(req.headers.host);
  if (policy.loopback && host !== undefined && !LOOPBACK_NAMES.has(host) && !policy.extraHosts.has(host)) {
    return `Host ${host} is not allowed: berth listens on loopback (DNS rebinding protection)`;
  }
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  if (policy.allowedOrigins.has(origin)) return undefined;
  let originHost: string;
  try {
    originHost = new URL(origin).hostname.toLowerCase();
  } catch {
    return `Origin ${origin} is not allowed`;
  }
  if (LOOPBACK_NAMES.has(originHost) || LOOPBACK_NAMES.has(`[${originHost}]`)) return undefined;
  return `Origin ${origin} is not allowed; add it to listen.allowedOrigins`;
}

function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const h = header.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.split(':')[0];
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(a) === 4) return a.startsWith('127.');
  return a === '::1';
}
