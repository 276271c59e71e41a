// A remote's client connections that berth multiplexes (SSE remotes, and the
// bridge legacy SSE clients and composites use towards streamable-HTTP ones):
// one for everyone, or one per user when the remote takes each user's own
// headers. The route table asks for a multiplexer; this owns the connections.
import type { Transport } from '../../desired/types.ts';
import type { Logger } from '../../observe/log.ts';
import type { Multiplexer } from '../mux/multiplex.ts';
import type { ConnectionAuthorization, ConnectionStatus, ConnectionSummary, RemoteConnection } from './http-upstream.ts';
import { connectRemote, summarizeConnections } from './http-upstream.ts';
import type { ServerOAuth } from './server-oauth.ts';
import { UserLinks } from './user-links.ts';

export interface RemoteConnectionsOptions {
  readonly server: string;
  readonly url: string;
  readonly transport: Transport;
  /** What everyone's connection sends. */
  readonly headers: Readonly<Record<string, string>>;
  /** A user's own headers, when the remote takes them: each user then gets an own connection. */
  readonly headersOf: ((user: string) => Promise<Readonly<Record<string, string>>>) | undefined;
  /**
   * berth as each user's OAuth client towards the remote. Once it applies (an
   * `oauth` block, or a 401 Bearer challenge seen), each user gets an own
   * connection carrying their token; before, the shared one notes challenges.
   */
  readonly oauth?: ServerOAuth;
  readonly logger: Logger;
  readonly maxMessageBytes?: number;
}

/** How status shows the connections: the shared one, or users' own counted by state. */
export type RemoteConnectionsStatus = { readonly remote: () => ConnectionStatus | undefined } | { readonly userConnections: () => ConnectionSummary };

export class RemoteConnections {
  readonly #o: RemoteConnectionsOptions;
  readonly #links: UserLinks<RemoteConnection>;
  #shared: RemoteConnection | undefined;

  constructor(options: RemoteConnectionsOptions) {
    this.#o = options;
    this.#links = new UserLinks<RemoteConnection>({ open: (user, headers) => this.#connect(headers, options.oauth?.connection(user)) });
    // An SSE remote's shared connection opens at once, so status shows a remote that is down before
    // anyone asks; the legacy bridge of a streamable-HTTP one opens on first use.
    if (options.transport === 'sse' && options.headersOf === undefined && options.oauth?.applies() !== true) this.#shared = this.#openShared();
  }

  async acquire(user: string, signal: AbortSignal): Promise<Multiplexer> {
    const { headersOf, oauth } = this.#o;
    if (headersOf === undefined && oauth?.applies() !== true) {
      try {
        return await (this.#shared ??= this.#openShared()).acquire(signal);
      } catch (err) {
        // The remote challenged the shared connection: from now on each user connects with their own token.
        if (oauth?.applies() !== true) throw err;
      }
    }
    // The shared connection would only be refused again and again.
    this.#shared?.close();
    this.#shared = undefined;
    // No token yet: the user is sent to authorize before any connection is made.
    await oauth?.connection(user).token();
    return this.#links.get(user, headersOf === undefined ? this.#o.headers : await headersOf(user)).acquire(signal);
  }

  /** Drops the user's own connection: the next `acquire` opens one with their headers as they are then. */
  renew(user: string): void {
    this.#links.drop(user);
  }

  status(): RemoteConnectionsStatus {
    if (this.#o.headersOf === undefined) return { remote: () => this.#shared?.status() };
    return { userConnections: () => summarizeConnections(this.#links.links().map((l) => l.status())) };
  }

  close(): void {
    this.#shared?.close();
    this.#links.close();
  }

  #openShared(): RemoteConnection {
    return this.#connect(this.#o.headers, this.#o.oauth?.connection(undefined));
  }

  #connect(headers: Readonly<Record<string, string>>, authorization: ConnectionAuthorization | undefined): RemoteConnection {
    const { server, url, transport, logger, maxMessageBytes } = this.#o;
    return connectRemote({ name: server, url, transport, headers: () => headers, logger, ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }), ...(authorization === undefined ? {} : { authorization }) });
  }
}
