import type { Logger } from '../observe/log.ts';
import type { StoredValue } from '../store/seal.ts';
import { openValue, sealValue } from '../store/seal.ts';
import type { OAuthSection, StateStore } from '../store/state.ts';
import { ownEntry, putEntry } from '../store/state.ts';

/** How berth authenticates at a token endpoint as one client. */
export interface ClientIdentity {
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly authMethod: 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** A registration's redirect URI: berth registers again when its callback moves. */
  readonly redirectUri?: string;
  /** A registration's RFC 7592 client configuration endpoint and its access token, where the server gave them: berth reads it to learn whether the server still knows the client. */
  readonly registration?: { readonly uri: string; readonly accessToken: string };
}

/** One owner's tokens for one server, with what refreshing and revoking them needs. */
export interface TokenSet {
  readonly accessToken: string;
  readonly refreshToken?: string;
  /** Milliseconds since the epoch; absent when the server said nothing. */
  readonly expiresAt?: number;
  /** When berth refreshes it: a minute before expiry, or a quarter of a short lifetime. */
  readonly refreshAt?: number;
  readonly scope?: string;
  readonly issuer: string;
  readonly resource: string;
  readonly tokenEndpoint: string;
  readonly revocationEndpoint?: string;
  readonly client: ClientIdentity;
}

type Section = 'tokens' | 'clients';

/**
 * Token sets per (owner, server) and client registrations per (server,
 * issuer), sealed in the state file. A value that no longer opens (a flipped
 * byte, a key gone) reads as absent: the user is asked to authorize again.
 */
export class OAuthStore {
  readonly #state: StateStore;
  readonly #logger: Logger;

  constructor(state: StateStore, logger: Logger) {
    this.#state = state;
    this.#logger = logger;
  }

  token(owner: string, server: string): Promise<TokenSet | undefined> {
    return this.#read('tokens', owner, server) as Promise<TokenSet | undefined>;
  }

  async saveToken(owner: string, server: string, set: TokenSet): Promise<void> {
    await this.#write('tokens', owner, server, set);
  }

  deleteToken(owner: string, server: string): Promise<boolean> {
    return this.#write('tokens', owner, server, undefined);
  }

  client(server: string, issuer: string): Promise<ClientIdentity | undefined> {
    return this.#read('clients', server, issuer) as Promise<ClientIdentity | undefined>;
  }

  async saveClient(server: string, issuer: string, client: ClientIdentity): Promise<void> {
    await this.#write('clients', server, issuer, client);
  }

  deleteClient(server: string, issuer: string): Promise<boolean> {
    return this.#write('clients', server, issuer, undefined);
  }

  async #read(section: Section, outer: string, inner: string): Promise<unknown> {
    const stored = ownEntry(ownEntry(this.#state.data.oauth?.[section], outer), inner);
    if (stored === undefined) return undefined;
    try {
      return JSON.parse(await openValue(this.#state.keyring, stored, contextOf(section, outer, inner))) as unknown;
    } catch (err) {
      this.#logger.warn({ section, server: section === 'tokens' ? inner : outer, code: (err as { code?: string }).code }, 'stored OAuth value unreadable; treated as absent');
      return undefined;
    }
  }

  /** Writes (or, with `value` undefined, removes) one sealed value; true when something changed. */
  async #write(section: Section, outer: string, inner: string, value: unknown): Promise<boolean> {
    const sealed: StoredValue | undefined = value === undefined ? undefined : await sealValue(this.#state.keyring, JSON.stringify(value), contextOf(section, outer, inner));
    return this.#state.update(async (data) => {
      const oauth: OAuthSection = data.oauth ?? {};
      const records = oauth[section] ?? {};
      const entries = ownEntry(records, outer) ?? {};
      if (sealed === undefined) {
        if (ownEntry(entries, inner) === undefined) return { changed: false, value: false };
        delete entries[inner];
        if (Object.keys(entries).length === 0) delete records[outer];
      } else {
        putEntry(entries, inner, sealed);
        putEntry(records, outer, entries);
      }
      oauth[section] = records;
      data.oauth = oauth;
      return { changed: true, value: true };
    });
  }
}

/** Where a sealed value belongs; part of its authenticated header, so values cannot be swapped between owners. */
function contextOf(section: Section, outer: string, inner: string): string {
  return `oauth/${section}/${encodeURIComponent(outer)}/${encodeURIComponent(inner)}`;
}
