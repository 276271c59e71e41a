/** Sessions remembered per passed-through route at most; past this the least recently used is forgotten. */
const MAX_SESSIONS = 50_000;

/**
 * Whose each upstream session is, on a route whose sessions are the
 * upstream's own (`Mcp-Session-Id` passed through). A session belongs to the
 * identity key that opened it; berth answers 404 to anyone else, and to ids
 * it never saw opened (another caller's guess, or a session of a previous run).
 */
export class SessionOwners {
  readonly #owners = new Map<string, string>();

  /** Records the session the upstream just opened for `owner`. */
  bind(session: string, owner: string): void {
    this.#owners.delete(session);
    this.#owners.set(session, owner);
    if (this.#owners.size > MAX_SESSIONS) this.#owners.delete(this.#owners.keys().next().value!);
  }

  /** Whether `owner` opened the session; a use keeps it among the recently used. */
  owns(session: string, owner: string): boolean {
    if (this.#owners.get(session) !== owner) return false;
    this.#owners.delete(session);
    this.#owners.set(session, owner);
    return true;
  }

  forget(session: string): void {
    this.#owners.delete(session);
  }
}
