import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Identity } from '../../identity.ts';
import type { Logger } from '../../observe/log.ts';
import type { Metrics } from '../../observe/metrics.ts';

/** A downstream MCP session berth holds for a client. */
export interface SessionEntry {
  readonly id: string;
  readonly server: string;
  /** Who opened it: only they may use it, and only while the config still admits them. */
  readonly identity: Identity;
  /** Whose sessions count together against the per-client cap (see RequestContext.client). */
  readonly client: string;
  readonly kind: 'streamable-http' | 'sse';
  readonly transport: Transport;
  lastSeen: number;
  /** Requests of the session in progress, its open GET stream among them: while any is, the session is in use. */
  active: number;
}

/** Why berth closed a session its client had not closed. */
export type EvictionReason = 'idle' | 'client-limit' | 'total-limit' | 'access-revoked';

export interface SessionStoreOptions {
  /** A session unused this long is closed; its id then gets 404. */
  readonly idleTtlMs: number;
  /** Past this many sessions in all, the least recently used one is closed. */
  readonly maxSessions?: number;
  /** Past this many sessions of one client, that client's least recently used one is closed. */
  readonly maxSessionsPerClient?: number;
  /** Told of every session berth closes on its own. */
  readonly onEvict?: (entry: SessionEntry, reason: EvictionReason) => void;
  readonly now?: () => number;
}

export const DEFAULT_MAX_SESSIONS = 20_000;
export const DEFAULT_MAX_SESSIONS_PER_CLIENT = 1_000;

/**
 * Every open downstream session, bounded in count and age: an abandoned
 * session costs memory until it expires, never forever. A client past its own
 * cap loses its own oldest session, so one client opening sessions in a loop
 * cannot push out another client's live one; the total cap is the last resort.
 */
export class SessionStore {
  // Map iteration order is insertion order; touching re-inserts, so the first entry is the least recently used.
  readonly #sessions = new Map<string, SessionEntry>();
  readonly #byClient = new Map<string, Map<string, SessionEntry>>();
  readonly #options: SessionStoreOptions;
  readonly #maxSessions: number;
  readonly #maxPerClient: number;
  readonly #now: () => number;

  constructor(options: SessionStoreOptions) {
    this.#options = options;
    this.#maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.#maxPerClient = options.maxSessionsPerClient ?? DEFAULT_MAX_SESSIONS_PER_CLIENT;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * The live session with this id, marked as used, if it belongs to `owner`:
   * a session is bound to the server, transport and user that created it, and
   * to anyone else it does not exist.
   */
  touch(id: string, owner: Pick<SessionEntry, 'server' | 'kind'> & { readonly user: string }): SessionEntry | undefined {
    const entry = this.#sessions.get(id);
    if (entry === undefined || entry.server !== owner.server || entry.kind !== owner.kind || entry.identity.key !== owner.user) return undefined;
    entry.lastSeen = this.#now();
    // Re-inserted to move it last, keeping its client's map: dropping and re-making that map cost a Map per request.
    this.#sessions.delete(id);
    this.#sessions.set(id, entry);
    const own = this.#byClient.get(entry.client);
    own?.delete(id);
    own?.set(id, entry);
    return entry;
  }

  /** Registers a new session, used as of now. */
  add(session: Omit<SessionEntry, 'lastSeen' | 'active'>): SessionEntry {
    const entry: SessionEntry = { ...session, lastSeen: this.#now(), active: 0 };
    const own = this.#byClient.get(entry.client);
    while (own !== undefined && own.size >= this.#maxPerClient) this.#evict(leastRecentlyUsed(own), 'client-limit');
    this.#insert(entry);
    while (this.#sessions.size > this.#maxSessions) this.#evict(leastRecentlyUsed(this.#sessions), 'total-limit');
    return entry;
  }

  /**
   * Marks the session in use until the returned function is called (when the
   * request's answer, or its stream, ends): a session holding a stream is
   * never idle, and is the last its client or the total cap gives up.
   */
  hold(entry: SessionEntry): () => void {
    entry.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.active--;
      if (this.#sessions.get(entry.id) === entry) this.touch(entry.id, { server: entry.server, kind: entry.kind, user: entry.identity.key });
    };
  }

  delete(id: string): void {
    const entry = this.#sessions.get(id);
    if (entry !== undefined) this.#remove(entry);
  }

  close(id: string): void {
    const entry = this.#sessions.get(id);
    if (entry === undefined) return;
    this.#remove(entry);
    void entry.transport.close().catch(() => undefined);
  }

  /** Closes sessions idle past the TTL; returns how many. */
  expire(): number {
    const cutoff = this.#now() - this.#options.idleTtlMs;
    let closed = 0;
    for (const entry of [...this.#sessions.values()]) {
      if (entry.active > 0) continue;
      if (entry.lastSeen >= cutoff) break; // the rest were used more recently
      this.#evict(entry, 'idle');
      closed++;
    }
    return closed;
  }

  /**
   * Closes every session `admitted` no longer admits (after a reload changed
   * auth or access): a user who lost access loses their open streams too,
   * not only their next request. Returns how many closed.
   */
  revoke(admitted: (entry: SessionEntry) => boolean): number {
    let closed = 0;
    for (const entry of [...this.#sessions.values()]) {
      if (admitted(entry)) continue;
      this.#evict(entry, 'access-revoked');
      closed++;
    }
    return closed;
  }

  countByServer(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const e of this.#sessions.values()) counts.set(e.server, (counts.get(e.server) ?? 0) + 1);
    return counts;
  }

  closeAll(): void {
    for (const id of [...this.#sessions.keys()]) this.close(id);
  }

  #evict(entry: SessionEntry | undefined, reason: EvictionReason): void {
    if (entry === undefined) return;
    this.close(entry.id);
    this.#options.onEvict?.(entry, reason);
  }

  #insert(entry: SessionEntry): void {
    this.#sessions.set(entry.id, entry);
    let own = this.#byClient.get(entry.client);
    if (own === undefined) this.#byClient.set(entry.client, (own = new Map()));
    own.set(entry.id, entry);
  }

  #remove(entry: SessionEntry): void {
    this.#sessions.delete(entry.id);
    const own = this.#byClient.get(entry.client);
    own?.delete(entry.id);
    if (own?.size === 0) this.#byClient.delete(entry.client);
  }
}

/** The least recently used session not in use, or the least recently used one when all are. */
function leastRecentlyUsed(sessions: ReadonlyMap<string, SessionEntry>): SessionEntry | undefined {
  let first: SessionEntry | undefined;
  for (const entry of sessions.values()) {
    if (entry.active === 0) return entry;
    first ??= entry;
  }
  return first;
}

/** Logs and counts evictions: a client whose session vanished can be told why. */
export function reportEvictions(logger: Logger, metrics: Pick<Metrics, 'sessionsEvicted'>): (entry: SessionEntry, reason: EvictionReason) => void {
  return (entry, reason) => {
    metrics.sessionsEvicted.inc({ reason });
    const fields = { session: entry.id, server: entry.server, user: entry.identity.key, client: entry.client, reason };
    // Idle expiry is routine; a cap being hit is worth an operator's attention.
    if (reason === 'idle') logger.debug(fields, 'session evicted');
    else logger.warn(fields, 'session evicted');
  };
}
