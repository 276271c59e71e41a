// One upstream connection per caller, for upstreams that take the caller's own
// credentials as request headers. A multiplexed connection is one upstream MCP
// session: it carries one set of headers, and MCP servers bind a session to
// the principal that opened it. So each user gets an own session on the
// shared instance (or remote), opened with their headers, which multiplexes
// only that user's client sessions.
import { canonicalJson } from '../../desired/hash.ts';
import type { Multiplexer } from '../mux/multiplex.ts';

/** A user's own connection: its multiplexer, and how to close the transport under it. */
export interface UserLink {
  readonly mux: Multiplexer;
  close(): void;
}

interface Entry<L extends UserLink> {
  readonly link: L;
  readonly headers: Readonly<Record<string, string>>;
  /** Canonical JSON of `headers`: a changed credential means a new connection. */
  readonly key: string;
  lastUsed: number;
}

export interface UserLinksOptions<L extends UserLink> {
  /** Opens a connection sending `headers` on every request. */
  readonly open: (user: string, headers: Readonly<Record<string, string>>) => L;
  /** A link without sessions is closed after this long unused. */
  readonly idleMs?: number;
  readonly now?: () => number;
}

/** Idle links go after 15 minutes, like a composite's per-user connections. */
const DEFAULT_IDLE_MS = 15 * 60_000;
/** `get` sweeps idle links at most this often, so a call costs O(1) however many users there are. */
const SWEEP_EVERY_MS = 60_000;

export class UserLinks<L extends UserLink> {
  readonly #o: UserLinksOptions<L>;
  readonly #now: () => number;
  readonly #links = new Map<string, Entry<L>>();
  #sweptAt: number;

  constructor(options: UserLinksOptions<L>) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#sweptAt = this.#now();
  }

  /**
   * The user's link sending exactly these headers. When the user's headers
   * changed (a new credential), a new link takes over the old one's sessions,
   * and the old one closes once its requests in flight are answered. Now
   * and then it also closes other users' idle links.
   */
  get(user: string, headers: Readonly<Record<string, string>>): L {
    const now = this.#now();
    const link = this.#linkFor(user, headers, now);
    // After the caller's own link was touched, so it is never the one closed.
    if (now - this.#sweptAt >= SWEEP_EVERY_MS) this.sweep();
    return link;
  }

  #linkFor(user: string, headers: Readonly<Record<string, string>>, now: number): L {
    const key = canonicalJson(headers);
    const current = this.#links.get(user);
    if (current?.key === key) {
      current.lastUsed = now;
      return current.link;
    }
    const link = this.#o.open(user, headers);
    this.#links.set(user, { link, headers, key, lastUsed: now });
    if (current !== undefined) {
      current.link.mux.handOver(link.mux);
      retire(current.link);
    }
    return link;
  }

  /** Closes the user's link: their sessions end and their clients reconnect (with their current credentials). */
  drop(user: string): void {
    const entry = this.#links.get(user);
    if (entry === undefined) return;
    this.#links.delete(user);
    entry.link.close();
  }

  /** Moves every user's sessions to a link of theirs in `heir` (a replacement instance). */
  handOver(heir: UserLinks<L>): void {
    for (const [user, entry] of [...this.#links]) {
      entry.link.mux.handOver(heir.get(user, entry.headers).mux);
    }
  }

  /** Closes links without sessions unused for the idle time. */
  sweep(): void {
    const now = this.#now();
    this.#sweptAt = now;
    const idleMs = this.#o.idleMs ?? DEFAULT_IDLE_MS;
    for (const [user, entry] of [...this.#links]) {
      const mux = entry.link.mux;
      if (mux.sessionCount > 0 || now - Math.max(entry.lastUsed, mux.lastActivity()) < idleMs) continue;
      this.#links.delete(user);
      entry.link.close();
    }
  }

  has(user: string): boolean {
    return this.#links.has(user);
  }

  /** Every user's link, for status; never the users' names. */
  links(): L[] {
    return [...this.#links.values()].map((e) => e.link);
  }

  get sessionCount(): number {
    let n = 0;
    for (const { link } of this.#links.values()) n += link.mux.sessionCount;
    return n;
  }

  get pendingCount(): number {
    let n = 0;
    for (const { link } of this.#links.values()) n += link.mux.pendingCount;
    return n;
  }

  lastActivity(): number {
    let last = 0;
    for (const { link } of this.#links.values()) last = Math.max(last, link.mux.lastActivity());
    return last;
  }

  /** Resolves once no link has a request in flight, or when the signal aborts. */
  async drain(signal: AbortSignal): Promise<void> {
    await Promise.all([...this.#links.values()].map(({ link }) => link.mux.drain(signal)));
  }

  close(): void {
    for (const { link } of this.#links.values()) link.close();
    this.#links.clear();
  }
}

/** How long a replaced link's requests in flight may take before it closes anyway. */
const RETIRE_MS = 10_000;

function retire(link: UserLink): void {
  void link.mux.drain(AbortSignal.timeout(RETIRE_MS)).then(() => link.close());
}
