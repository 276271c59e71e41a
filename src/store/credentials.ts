import { BerthError, isBerthError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import type { StoredValue } from './seal.ts';
import { openValue, sealValue } from './seal.ts';
import type { StateStore } from './state.ts';
import { ownEntry, putEntry } from './state.ts';

/** A value a user supplies; sensitive ones are sealed at rest. */
export interface CredentialInput {
  readonly value: string;
  readonly sensitive: boolean;
}

/** Whose credentials for which server changed, and which names. */
export interface CredentialChange {
  readonly user: string;
  readonly server: string;
  readonly names: readonly string[];
}

export type CredentialListener = (change: CredentialChange) => void;

/**
 * Each user's credentials per server, in the state file. Values are only ever
 * returned by `get`; listing shows names. Listeners hear about a change once
 * it is on disk, and only when a value really changed.
 */
export class CredentialStore {
  readonly #state: StateStore;
  readonly #logger: Logger;
  readonly #listeners = new Set<CredentialListener>();

  constructor(state: StateStore, logger: Logger) {
    this.#state = state;
    this.#logger = logger;
  }

  /** The user's values for a server, in the clear; empty when there are none. */
  async get(user: string, server: string): Promise<Readonly<Record<string, string>>> {
    const stored = ownEntry(ownEntry(this.#state.data.credentials, user), server) ?? {};
    const values: Record<string, string> = {};
    for (const [name, value] of Object.entries(stored)) {
      const context = contextOf(user, server, name);
      const text = await openValue(this.#state.keyring, value, context).catch((err: unknown) => {
        // Named, with the remedy: not an anonymous failure at the request that needed it.
        if (!isBerthError(err)) throw err;
        throw new BerthError(err.code, `the saved ${name} for ${server} cannot be read (${context}): ${err.message}; enter it again at /connect/${server}`, { cause: err });
      });
      putEntry(values, name, text);
    }
    return values;
  }

  /** Stores the given values beside the ones already saved; a sensitive value without a state key is refused. */
  async set(user: string, server: string, values: Readonly<Record<string, CredentialInput>>): Promise<void> {
    const keyring = this.#state.keyring;
    // Sealed before the file is touched, so a missing key refuses the whole set.
    const sealed: [string, StoredValue][] = [];
    for (const [name, input] of Object.entries(values)) {
      sealed.push([name, input.sensitive ? await sealValue(keyring, input.value, contextOf(user, server, name)) : { plain: input.value }]);
    }
    const names = await this.#state.update(async (data) => {
      const current = ownEntry(ownEntry(data.credentials, user), server) ?? {};
      const changed: string[] = [];
      for (const [name, stored] of sealed) {
        const old = ownEntry(current, name);
        const same = old !== undefined && 'sealed' in old === 'sealed' in stored && (await openValue(keyring, old, contextOf(user, server, name)).catch(() => undefined)) === values[name]?.value;
        if (!same) changed.push(name);
      }
      if (changed.length === 0) return { changed: false, value: changed };
      const servers = ownEntry(data.credentials, user) ?? {};
      const next = { ...current };
      for (const [name, stored] of sealed) putEntry(next, name, stored);
      putEntry(servers, server, next);
      putEntry(data.credentials, user, servers);
      return { changed: true, value: changed };
    });
    this.#changed({ user, server, names }, 'credentials saved');
  }

  /** The servers the user has saved credentials for, with the names only. */
  list(user: string): Readonly<Record<string, readonly string[]>> {
    const servers = ownEntry(this.#state.data.credentials, user) ?? {};
    return Object.fromEntries(Object.entries(servers).map(([server, values]) => [server, Object.keys(values).sort()]));
  }

  /** Forgets one value, or all of a server's; true when something was there. */
  async delete(user: string, server: string, name?: string): Promise<boolean> {
    const names = await this.#state.update(async (data) => {
      const servers = ownEntry(data.credentials, user);
      const current = ownEntry(servers, server);
      if (servers === undefined || current === undefined) return { changed: false, value: [] };
      const gone = name === undefined ? Object.keys(current) : Object.hasOwn(current, name) ? [name] : [];
      if (gone.length === 0) return { changed: false, value: [] };
      const rest = Object.fromEntries(Object.entries(current).filter(([n]) => !gone.includes(n)));
      if (Object.keys(rest).length > 0) putEntry(servers, server, rest);
      else delete servers[server];
      if (Object.keys(servers).length === 0) delete data.credentials[user];
      return { changed: true, value: gone };
    });
    this.#changed({ user, server, names }, 'credentials deleted');
    return names.length > 0;
  }

  /** Calls `listener` after each change on disk; returns the function that stops it. */
  onChange(listener: CredentialListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(change: CredentialChange, message: string): void {
    if (change.names.length === 0) return;
    this.#logger.info({ user: change.user, server: change.server, names: change.names }, message);
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#logger.error({ err, user: change.user, server: change.server }, 'credential listener failed');
      }
    }
  }
}

/** Where a sealed value belongs; part of its authenticated header. */
function contextOf(user: string, server: string, name: string): string {
  return `credentials/${encodeURIComponent(user)}/${server}/${name}`;
}
