// One multiplexer per user over a channel opened as that user: a composite's
// connections to its components. Owned here with the other upstream
// connections; the route table only asks for a user's multiplexer.
import { ProxyError } from '../../http/proxy-error.ts';
import type { Identity } from '../../identity.ts';
import { ANONYMOUS } from '../../identity.ts';
import type { Multiplexer } from '../mux/multiplex.ts';

export interface UserChannel {
  close(): unknown;
}

interface Entry<C extends UserChannel> {
  readonly mux: Multiplexer;
  readonly channel: C;
  lastUsed: number;
  identity: Identity;
}

export interface UserChannelsOptions<C extends UserChannel> {
  /** The server the channels serve, for errors. */
  readonly server: string;
  /** Opens a user's channel and its multiplexer; `identity` reads the user's latest (groups and scopes may change between requests). */
  readonly open: (user: string, identity: () => Identity) => { readonly mux: Multiplexer; readonly channel: C };
  /** A user's channel without a session is released after this long. */
  readonly idleMs: number;
}

export class UserChannels<C extends UserChannel> {
  readonly #o: UserChannelsOptions<C>;
  readonly #perUser = new Map<string, Entry<C>>();
  #closed = false;

  constructor(options: UserChannelsOptions<C>) {
    this.#o = options;
  }

  /** The user's multiplexer, opened on first use; other users' idle channels are released on the way. */
  acquire(user: string, identity?: Identity): Multiplexer {
    if (this.#closed) throw new ProxyError('upstream_closed', `server ${this.#o.server} is shutting down`);
    const now = Date.now();
    for (const [other, { mux, channel, lastUsed }] of this.#perUser) {
      if (other === user || mux.sessionCount > 0 || now - Math.max(lastUsed, mux.lastActivity()) < this.#o.idleMs) continue;
      this.#perUser.delete(other);
      mux.close();
      void channel.close();
    }
    let entry = this.#perUser.get(user);
    if (entry === undefined) {
      const self = { identity: identity ?? ANONYMOUS };
      const { mux, channel } = this.#o.open(user, () => self.identity);
      entry = Object.assign(self, { mux, channel, lastUsed: now });
      this.#perUser.set(user, entry);
    }
    if (identity !== undefined) entry.identity = identity;
    entry.lastUsed = now;
    return entry.mux;
  }

  /** Each user's multiplexer and latest identity, for a hand-over to a replacement. */
  users(): { user: string; mux: Multiplexer; identity: Identity }[] {
    return [...this.#perUser].map(([user, { mux, identity }]) => ({ user, mux, identity }));
  }

  channels(): C[] {
    return [...this.#perUser.values()].map((e) => e.channel);
  }

  /** Closes every user's channel; a later `acquire` is refused as shutting down. */
  close(): void {
    this.#closed = true;
    for (const { mux, channel } of this.#perUser.values()) {
      mux.close();
      void channel.close();
    }
    this.#perUser.clear();
  }
}
