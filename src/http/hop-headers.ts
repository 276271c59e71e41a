import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Headers of one hop (RFC 9110 §7.6.1): they describe a connection, never the message, so a proxy drops them. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/**
 * The end-to-end headers of a message: without the hop-by-hop ones, `Proxy-*`,
 * any header its `Connection` names, and `drop`.
 */
export function endToEndHeaders(headers: IncomingHttpHeaders, drop: ReadonlySet<string>): OutgoingHttpHeaders {
  const named = headers.connection === undefined ? undefined : new Set(headers.connection.toLowerCase().split(',').map((t) => t.trim()));
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || drop.has(name) || name.startsWith('proxy-') || named?.has(name) === true) continue;
    out[name] = value;
  }
  return out;
}
