import { createHash } from 'node:crypto';
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
 * The label-safe name of a user on backend objects: their identity never
 * appears in container labels, pod labels or instance ids, only this.
 */
export function hashUser(user: string): string {
  return createHash('sha256').update(`berth-user:${user}`).digest('hex').slice(0, 16);
}
