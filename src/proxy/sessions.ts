import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';

/** A downstream MCP session berth holds for a client. */
export interface SessionEntry {
  readonly id: string;
  readonly server: string;
  readonly user: string;
  readonly kind: 'streamable-http' | 'sse';
  readonly transport: Transport;
  lastSeen: number;
}

export interface SessionStoreOptions {
  /** A session unused this long is closed; its id then gets 404. */
  readonly idleTtlMs: number;
  /** Past this many sessions the least recently used one is closed. */
  readonly maxSessions: number;
  readonly now?: () => number;
}

/**
 * Every open downstream session, bounded in count and age: an abandoned
 * session costs memory until it expires, never forever.
 */
export class SessionStore {
  // Map iteration order is insertion order; touching re-inserts, so the first entry is the least recently used.
  readonly #sessions = new Map<string, SessionEntry>();
  readonly #options: SessionStoreOptions;
  readonly #now: () => number;

  constructor(options: SessionStoreOptions) {
    this.#options = options;
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
  touch(id: string, owner: Pick<SessionEntry, 'server' | 'kind' | 'user'>): SessionEntry | undefined {
    const entry = this.#sessions.get(id);
    if (entry === undefined || entry.server !== owner.server || entry.kind !== owner.kind || entry.user !== owner.user) return undefined;
    this.#sessions.delete(id);
    entry.lastSeen = this.#now();
    this.#sessions.set(id, entry);
    return entry;
  }

  /** Registers a new session, used as of now. */
  add(session: Omit<SessionEntry, 'lastSeen'>): void {
    const entry: SessionEntry = { ...session, lastSeen: this.#now() };
    this.#sessions.set(entry.id, entry);
    while (this.#sessions.size > this.#options.maxSessions) {
      const oldest = this.#sessions.values().next().value;
      if (oldest === undefined) break;
      this.close(oldest.id);
    }
  }

  delete(id: string): void {
    this.#sessions.delete(id);
  }

  close(id: string): void {
    const entry = this.#sessions.get(id);
    if (entry === undefined) return;
    this.#sessions.delete(id);
    void entry.transport.close().catch(() => undefined);
  }

  /** Closes sessions idle past the TTL; returns how many. */
  expire(): number {
    const cutoff = this.#now() - this.#options.idleTtlMs;
    let closed = 0;
    for (const entry of [...this.#sessions.values()]) {
      if (entry.lastSeen >= cutoff) break; // the rest were used more recently
      this.close(entry.id);
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
}
