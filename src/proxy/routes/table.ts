import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { mayAccess } from '../../auth/access.ts';
import type { Identity } from '../../identity.ts';
import { canonicalJson } from '../../desired/hash.ts';
import type { DesiredState, Route } from '../../desired/types.ts';
import type { Logger } from '../../observe/log.ts';
import { createCompositeChannel } from './composite.ts';
import type { ComponentHealth, ConnectComponent } from './composite.ts';
import { McpEndpoint } from '../downstream/mcp-endpoint.ts';
import { Multiplexer } from '../mux/multiplex.ts';
import type { Authorizer } from '../../oauth/authorizer.ts';
import { ownerOf } from '../../oauth/owner.ts';
import { Passthrough } from './passthrough.ts';
import type { UpstreamAuthorization } from './passthrough.ts';
import type { ConnectionStatus, ConnectionSummary } from '../upstream/http-upstream.ts';
import type { ServerOAuth } from '../upstream/server-oauth.ts';
import { serverOAuthOf } from '../upstream/server-oauth.ts';
import { RemoteConnections } from '../upstream/remote-connections.ts';
import { UserChannels } from '../upstream/user-channels.ts';
import type { SessionStore } from '../downstream/sessions.ts';
import { ProxyError } from '../../http/proxy-error.ts';
import { connectUrlOf } from '../../credentials/missing.ts';
import type { HeaderRoute, UserHeaderSource } from '../upstream/user-headers.ts';
import { hasUserHeaders } from '../upstream/user-headers.ts';

/** What any handler may say about its upstream connections, and how it closes. */
interface HandlerConnections {
  /** A remote's one shared connection (an SSE remote's, or the bridge legacy SSE clients of a streamable-HTTP one use): connected, connecting, down (with the last error). */
  remote?(): ConnectionStatus | undefined;
  /** A remote's connections when each user has an own one (per-user headers). */
  userConnections?(): ConnectionSummary;
  /** A user's credentials changed: their own upstream connections close, their clients reconnect. */
  renew?(user: string): void;
  close(): void;
}

/** How one server's requests are served. */
export type RouteHandler = HandlerConnections &
  (
    | {
        readonly kind: 'mcp';
        readonly route: Route;
        readonly endpoint: McpEndpoint;
        /** Moves this handler's sessions to its replacement, whose clients then list tools again. */
        handOver?(next: RouteHandler & { kind: 'mcp' }): Promise<void>;
        /** A composite's components, with the ones left out for some user marked down. */
        health?(): readonly ComponentHealth[];
      }
    | {
        readonly kind: 'passthrough';
        readonly route: Route;
        readonly passthrough: Passthrough;
        /** Legacy SSE clients of a streamable-HTTP remote: bridged over one client connection, made on first use. */
        readonly sse: McpEndpoint;
      }
  );

/** The proxy's routing state: replaced whole, in one assignment, on every reload. */
export interface RouteTable {
  readonly generation: number;
  readonly handlers: ReadonlyMap<string, RouteHandler>;
}

/** What hosted routes need from the upstream pool. */
export interface HostedUpstreams {
  /** With `headers`: the user's own connection to the instance, sending them. */
  acquire(unit: string, user: string, signal: AbortSignal, headers?: Readonly<Record<string, string>>): Promise<Multiplexer>;
}

export interface TableDeps {
  readonly upstreams: HostedUpstreams;
  readonly sessions: SessionStore;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  /** The largest answer taken from a remote (listen.maxAnswerBytes); default 10 MiB. */
  readonly maxMessageBytes?: number;
  readonly keepAliveMs: number;
  /** listen.publicUrl, for links berth gives out. */
  readonly publicUrl?: string;
  /** Each caller's headers for routes that use `${user.credentials.…}`. */
  readonly userHeaders?: UserHeaderSource;
  /** berth as each user's OAuth client towards remotes that ask for a token. */
  readonly oauth?: Authorizer;
  /**
   * The handler serving `server` in the current route table (not the one
   * being built): composites reach their components through it, at connect time.
   */
  readonly lookup: (server: string) => RouteHandler | undefined;
}

export const EMPTY_TABLE: RouteTable = { generation: 0, handlers: new Map() };

/**
 * Holds the route table in force. A swap builds the next table beside the
 * current one and replaces it in one assignment; retired handlers hand their
 * sessions over in the background, so a slow hand-over never holds a reload.
 */
export class RouteTables {
  #current: RouteTable = EMPTY_TABLE;
  readonly #deps: Omit<TableDeps, 'lookup'>;
  #retiring: Promise<void> = Promise.resolve();

  constructor(deps: Omit<TableDeps, 'lookup'>) {
    this.#deps = deps;
  }

  get current(): RouteTable {
    return this.#current;
  }

  swap(desired: DesiredState, generation: number): void {
    const previous = this.#current;
    this.#current = buildRouteTable(desired, previous, generation, { ...this.#deps, lookup: (server) => this.#current.handlers.get(server) });
    const next = this.#current;
    this.#retiring = this.#retiring
      .then(() => retireHandlers(previous, next))
      .catch((err: unknown) => this.#deps.logger.error({ err }, 'retiring old routes failed'));
  }

  /** Closes every handler once pending hand-overs are done. */
  async close(): Promise<void> {
    await this.#retiring;
    for (const handler of this.#current.handlers.values()) handler.close();
  }
}

/**
 * Builds the handlers for a desired state. Handlers whose route did not change
 * are carried over from the previous table, so their upstream connections and
 * sessions never notice the reload.
 */
export function buildRouteTable(desired: DesiredState, previous: RouteTable, generation: number, deps: TableDeps): RouteTable {
  const changed = new Set(desired.routes.filter((r) => !sameRoute(previous.handlers.get(r.server)?.route, r)).map((r) => r.server));
  // A composite holds connections to its components: when one changes, so does the composite.
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of desired.routes) {
      if (r.kind !== 'composite' || changed.has(r.server) || !r.components.some((c) => changed.has(c.server))) continue;
      changed.add(r.server);
      grew = true;
    }
  }
  const handlers = new Map<string, RouteHandler>();
  for (const route of desired.routes) {
    const old = previous.handlers.get(route.server);
    handlers.set(route.server, old !== undefined && !changed.has(route.server) ? old : handlerFor(route, deps));
  }
  return { generation, handlers };
}

/**
 * Retires the previous table's handlers that the next one does not carry:
 * sessions move to a replacement where there is one, then the old handler closes.
 */
export async function retireHandlers(previous: RouteTable, next: RouteTable): Promise<void> {
  const kept = new Set(next.handlers.values());
  for (const [server, old] of previous.handlers) {
    if (kept.has(old)) continue;
    const heir = next.handlers.get(server);
    if (old.kind === 'mcp' && heir?.kind === 'mcp') await old.handOver?.(heir);
    old.close();
  }
}

function handlerFor(route: Route, deps: TableDeps): RouteHandler {
  const endpoint = (acquire: (user: string, signal: AbortSignal) => Promise<Multiplexer>): McpEndpoint =>
    new McpEndpoint({ server: route.server, acquire, sessions: deps.sessions, maxBodyBytes: deps.maxBodyBytes, keepAliveMs: deps.keepAliveMs, logger: deps.logger, ...(deps.publicUrl === undefined ? {} : { publicUrl: deps.publicUrl }) });
  const headersOf = userHeadersOf(route, deps);
  switch (route.kind) {
    case 'hosted': {
      const acquire = async (user: string, signal: AbortSignal): Promise<Multiplexer> =>
        headersOf === undefined ? deps.upstreams.acquire(route.unit, user, signal) : deps.upstreams.acquire(route.unit, user, signal, await headersOf(user));
      return { kind: 'mcp', route, endpoint: endpoint(acquire), close: () => undefined };
    }
    case 'remote':
      return remoteHandler(route, deps, endpoint, headersOf);
    case 'composite':
      return compositeHandler(route, deps);
  }
}

/** The caller's headers for a route made of their credentials; undefined when the route has none. */
function userHeadersOf(route: Route, deps: TableDeps): ((user: string) => Promise<Readonly<Record<string, string>>>) | undefined {
  if (!hasUserHeaders(route)) return undefined;
  const source = deps.userHeaders;
  const headerRoute: HeaderRoute = route;
  if (source === undefined) return () => Promise.reject(new ProxyError('upstream_unavailable', `server ${route.server} needs per-user headers, which this berth cannot read`));
  return (user) => source.headersFor(headerRoute, user);
}

/**
 * A remote: passed through (streamable HTTP), or held as client connections
 * berth multiplexes (SSE remotes, and legacy SSE clients of streamable-HTTP
 * ones). With per-user headers each user gets an own connection.
 */
function remoteHandler(route: Route & { kind: 'remote' }, deps: TableDeps, endpoint: (acquire: (user: string, signal: AbortSignal) => Promise<Multiplexer>) => McpEndpoint, userHeadersOf: ((user: string) => Promise<Readonly<Record<string, string>>>) | undefined): RouteHandler {
  const limit = deps.maxMessageBytes === undefined ? {} : { maxMessageBytes: deps.maxMessageBytes };
  const oauth = serverOAuthOf(route, deps.oauth);
  const connections = new RemoteConnections({ server: route.server, url: route.url, transport: route.transport, headers: route.headers.values, headersOf: userHeadersOf, ...(oauth === undefined ? {} : { oauth }), logger: deps.logger, ...limit });
  const acquire = (user: string, signal: AbortSignal): Promise<Multiplexer> => connections.acquire(user, signal);
  const renew = (user: string): void => connections.renew(user);
  const status = connections.status();
  const close = (): void => connections.close();
  if (route.transport === 'sse') return { kind: 'mcp', route, endpoint: endpoint(acquire), ...status, renew, close };
  const userHeaders = userHeadersOf === undefined ? {} : { userHeaders: { names: Object.keys(route.userHeaders ?? {}), headersFor: userHeadersOf } };
  const authorization = upstreamAuthorizationOf(route, oauth);
  const passthrough = new Passthrough({
    server: route.server,
    url: route.url,
    headers: route.headers.values,
    maxBodyBytes: deps.maxBodyBytes,
    ...limit,
    ...userHeaders,
    ...(authorization === undefined ? {} : { authorization }),
    ...(deps.publicUrl === undefined ? {} : { publicUrl: deps.publicUrl }),
  });
  return {
    kind: 'passthrough',
    route,
    passthrough,
    sse: endpoint(acquire),
    ...status,
    renew,
    close: () => {
      passthrough.close();
      close();
    },
  };
}

/** The passthrough's view of a remote's OAuth: per caller identity. */
function upstreamAuthorizationOf(route: Route & { kind: 'remote' }, client: ServerOAuth | undefined): UpstreamAuthorization | undefined {
  if (client === undefined) return undefined;
  return {
    tokenFor: (identity) => client.connection(ownerOf(identity)).token(),
    challenged: (identity, header, sent, retried) => client.connection(ownerOf(identity)).challenged(route.url, header, sent, retried),
  };
}

/** A user's composite connections are released after this long without a session. */
const IDLE_COMPOSITE_MS = 15 * 60_000;

/** A composite: one multiplexer per user over that user's composite channel. */
function compositeHandler(route: Route & { kind: 'composite' }, deps: TableDeps): RouteHandler {
  const connect = connectComponentVia(deps.lookup);
  const channels = new UserChannels({
    server: route.server,
    idleMs: IDLE_COMPOSITE_MS,
    open: (user, identity) => {
      const channel = createCompositeChannel({
        route,
        user,
        connect: (server, u, signal) => connect(server, u, signal, identity()),
        reachable: (component) => mayAccess(component.access, identity()) && mayAccess(deps.lookup(component.server)?.route.access, identity()),
        connectUrl: (server) => connectUrlOf(deps.publicUrl ?? '', server),
        logger: deps.logger,
      });
      return { channel, mux: new Multiplexer({ name: route.server, channel, logger: deps.logger, callee: () => ({ server: route.server, transport: 'inproc' }) }) };
    },
  });
  const acquire = async (user: string, _signal?: AbortSignal, identity?: Identity): Promise<Multiplexer> => channels.acquire(user, identity);
  const endpoint = new McpEndpoint({ server: route.server, acquire, sessions: deps.sessions, maxBodyBytes: deps.maxBodyBytes, keepAliveMs: deps.keepAliveMs, logger: deps.logger });
  const handOver = async (next: RouteHandler & { kind: 'mcp' }): Promise<void> => {
    for (const { user, mux, identity } of channels.users()) {
      const heir = await next.endpoint.acquire(user, AbortSignal.timeout(30_000), identity).catch(() => undefined);
      if (heir !== undefined) mux.handOver(heir);
    }
  };
  const health = (): ComponentHealth[] => {
    const byServer = new Map<string, ComponentHealth>();
    for (const channel of channels.channels()) {
      for (const h of channel.health()) if (byServer.get(h.server)?.state !== 'down') byServer.set(h.server, h);
    }
    return route.components.map((c) => byServer.get(c.server) ?? { server: c.server, state: 'up' });
  };
  return { kind: 'mcp', route, endpoint, handOver, health, close: () => channels.close() };
}

/**
 * Connects a composite to a component through the handler currently serving
 * it, as the user: onto that server's multiplexer (for a streamable-HTTP
 * remote, its bridged client connection), over an in-memory pair.
 */
function connectComponentVia(lookup: TableDeps['lookup']): (...args: [...Parameters<ConnectComponent>, Identity]) => Promise<Transport> {
  return async (server: string, user: string, signal: AbortSignal, identity: Identity): Promise<Transport> => {
    const handler = lookup(server);
    if (handler === undefined) throw new ProxyError('upstream_unavailable', `server ${server} is not served`);
    const mux = await (handler.kind === 'mcp' ? handler.endpoint : handler.sse).acquire(user, signal, identity);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    mux.attach(serverSide, user);
    await serverSide.start();
    return clientSide;
  };
}

function sameRoute(a: Route | undefined, b: Route): boolean {
  return a !== undefined && canonicalJson(a) === canonicalJson(b);
}
