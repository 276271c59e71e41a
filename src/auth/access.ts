import type { Access } from '../desired/types.ts';
import type { Identity } from '../identity.ts';

// Access rules are allow-lists: without one everyone authenticated may; once
// one exists, only the callers it names (and only with every scope it needs).

/** Whether `identity` may use what `access` guards. */
export function mayAccess(access: Access | undefined, identity: Identity): boolean {
  if (access === undefined) return true;
  return isNamed(access, identity) && missingScopes(access.scopes, identity).length === 0;
}

/** Whether the rule names the caller; a rule of scopes alone names everyone holding them. */
export function isNamed(access: Access, identity: Identity): boolean {
  const { users = [], groups = [], scopes = [] } = access;
  if (users.length === 0 && groups.length === 0) return scopes.length > 0;
  return users.includes(identity.user) || groups.some((g) => identity.groups.includes(g));
}

/** The scopes of `needed` the caller's token lacks. */
export function missingScopes(needed: readonly string[] | undefined, identity: Identity): string[] {
  return (needed ?? []).filter((s) => !identity.scopes.includes(s));
}
