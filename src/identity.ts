/** Who is calling, as an auth provider established it. */
export interface Identity {
  readonly user: string;
  readonly groups: readonly string[];
  /** OAuth scopes of the caller's token; empty for other kinds of credential. */
  readonly scopes: readonly string[];
  readonly provider: ProviderType;
}

export type ProviderType = 'none' | 'apiKey' | 'jwt' | 'header';

export const ANONYMOUS: Identity = Object.freeze({ user: 'anonymous', groups: [], scopes: [], provider: 'none' });
