import { createHash, createHmac } from 'node:crypto';
import canonicalize from 'canonicalize';

/** Canonical JSON (RFC 8785): key order and formatting never matter. */
export function canonicalJson(value: unknown): string {
  return (canonicalize as unknown as (v: unknown) => string)(value);
}

/** Short stable hash of a value's canonical JSON; used for unit identity. */
export function hashSpec(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 16);
}

/**
 * The label-safe name of a user (their identity key) on backend objects:
 * their identity never appears in container labels, pod labels or instance
 * ids, only this. Keyed with the installation's secret, so a list of likely
 * names does not reverse it.
 */
export function hashUser(user: string, secret: string): string {
  return createHmac('sha256', secret).update(`berth-user:${user}`).digest('hex').slice(0, 16);
}
