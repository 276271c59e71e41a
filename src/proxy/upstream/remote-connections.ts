// A remote's client connections that berth multiplexes (SSE remotes, and the
// bridge legacy SSE clients and composites use towards streamable-HTTP ones):
// one for everyone, or one per user when the remote takes each user's own
// headers. The route table asks for a multiplexer; this owns the connections.
import type { Transport } from '../../desired/types.ts';
import type { Logger } from '../../observe/log.ts';
import type { Multiplexer } from '../mux/multiplex.ts';
import type { ConnectionStatus, ConnectionSummary, RemoteConnection } from './http-upstream.ts';
import { connectRemote, summarizeConnections } from './http-upstream.ts';
import { UserLinks } from './user-links.ts';

export interface RemoteConnectionsOptions {
  readonly server: string;
  readonly url: string;
  readonly transport: Transport;
  /** What everyone's connection sends. */
  readonly headers: Readonly<Record<string, string>>;
  /** A user's own headers, when the remote takes them: each user then gets an own connection. */
  readonly headersOf: ((user: string) => Promise<Readonly<Record<string, string>>>) | undefined;
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
    this.#links = new UserLinks<RemoteConnection>({ open: (_user, headers) => this.#connect(headers) });
    // An SSE remote's shared connection opens at once, so status shows a remote that is down before
    // anyone asks; the legacy bridge of a streamable-HTTP one opens on first use.
    if (options.transport === 'sse' && options.headersOf === undefined) this.#shared = this.#connect(options.headers);
  }

  async acquire(user: string, signal: AbortSignal): Promise<Multiplexer> {
    const headersOf = this.#o.headersOf;
    if (headersOf === undefined) return (this.#shared ??= this.#connect(this.#o.headers)).acquire(signal);
    return this.#links.get(user, await headersOf(user)).acquire(signal);
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

  #connect(headers: Readonly<Record<string, string>>): RemoteConnection {
    const { server, url, transport, logger, maxMessageBytes } = this.#o;
    return connectRemote({ name: server, url, transport, headers: () => headers, logger, ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }) });
  }
}
