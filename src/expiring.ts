/**
 * Short-lived entries under random keys: the authorizations and sign-ins
 * berth waits to see come back, one-time links, browser sessions. Each lives
 * `ttlMs` from when it was set; at most `max` are held, the oldest going
 * first. One lifetime per map keeps entries in the order they expire, so
 * dropping the expired ones stops at the first live one.
 */
export class Expiring<V> {
  readonly #entries = new Map<string, { readonly value: V; readonly expires: number }>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(options: { readonly ttlMs: number; readonly max: number; readonly now?: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#max = options.max;
    this.#now = options.now ?? Date.now;
  }

  set(key: string, value: V): void {
    const now = this.#now();
    for (const [k, entry] of this.#entries) {
      if (entry.expires >= now) break;
      this.#entries.delete(k);
    }
    this.#entries.delete(key);
    while (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, { value, expires: now + this.#ttlMs });
  }

  /** The live entry under `key`, if any. */
  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    return entry !== undefined && entry.expires >= this.#now() ? entry.value : undefined;
  }

  /** The live entry under `key`, spent: it answers once, whatever the caller then decides. */
  take(key: string): V | undefined {
    const value = this.get(key);
    this.#entries.delete(key);
    return value;
  }
}
