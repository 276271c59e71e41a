/** Who is calling, as an auth provider established it. */
export interface Identity {
  /** The caller's name as the provider gives it: shown on pages, matched by `access.users`. */
  readonly user: string;
  /** Who the caller is across providers; see identityKey. */
  readonly key: string;
  readonly groups: readonly string[];
  /** OAuth scopes of the caller's token; empty for other kinds of credential. */
  readonly scopes: readonly string[];
  readonly provider: ProviderType;
}

export type ProviderType = 'none' | 'apiKey' | 'jwt' | 'header';

export const ANONYMOUS: Identity = Object.freeze({ user: 'anonymous', key: 'anonymous', groups: [], scopes: [], provider: 'none' });

/**
 * The stable key of an identity: (provider, subject), so an apiKey user
 * `alice`, a header user `alice` and `sub: alice` of two issuers are four
 * people. Instances, stored credentials, sessions, limits and upstream tokens
 * key on it; only a provider's explicit `usernamePrefix` makes two share one.
 */
export function identityKey(identity: Identity): string {
  return identity.key;
}

/**
 * The key of `subject` from a provider whose own namespace is `realm`
 * (`apiKey:`, `jwt:<issuer>#`, `header:<user header>:`), unless the operator
 * configured a `usernamePrefix` for it, which replaces the realm.
 */
export function keyOf(realm: string, subject: string, usernamePrefix: string | undefined): string {
  return `${usernamePrefix ?? realm}${subject}`;
}
