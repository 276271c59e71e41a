import type { Backend } from '../backends/backend.ts';
import { canonicalJson } from '../desired/hash.ts';
import type { DesiredState, Route } from '../desired/types.ts';
import type { Logger } from '../observe/log.ts';
import { McpEndpoint } from './mcp-endpoint.ts';
import type { Multiplexer } from './multiplex.ts';
import { Passthrough } from './passthrough.ts';
import { RemoteSse } from './remote-sse.ts';
import type { SessionStore } from './sessions.ts';

/** How one server's requests are served. */
export type RouteHandler =
  | { readonly kind: 'mcp'; readonly route: Route; readonly endpoint: McpEndpoint; close(): void }
  | { readonly kind: 'passthrough'; readonly route: Route; readonly passthrough: Passthrough; close(): void };

/** The proxy's routing state: replaced whole, in one assignment, on every reload. */
export interface RouteTable {
  readonly generation: number;
  readonly handlers: ReadonlyMap<string, RouteHandler>;
}

export interface TableDeps {
  readonly backend: Backend;
  readonly sessions: SessionStore;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
  readonly keepAliveMs: number;
  /** Builds composite endpoints; composites are served only when given. */
  readonly composite?: (route: Route & { kind: 'composite' }) => McpEndpoint;
}

export const EMPTY_TABLE: RouteTable = { generation: 0, handlers: new Map() };

/**
 * Builds the handlers for a desired state. Handlers whose route did not change
 * are carried over from the previous table, so their upstream connections and
 * sessions never notice the reload.
 */
export function buildRouteTable(desired: DesiredState, previous: RouteTable, generation: number, deps: TableDeps): RouteTable {
  const handlers = new Map<string, RouteHandler>();
  for (const route of desired.routes) {
    const old = previous.handlers.get(route.server);
    handlers.set(route.server, old !== undefined && sameRoute(old.route, route) ? old : handlerFor(route, deps));
  }
  return { generation, handlers };
}

/** Handlers of the previous table not carried into the next: close them after the swap. */
export function retiredHandlers(previous: RouteTable, next: RouteTable): RouteHandler[] {
  const kept = new Set(next.handlers.values());
  return [...previous.handlers.values()].filter((h) => !kept.has(h));
}

function handlerFor(route: Route, deps: TableDeps): RouteHandler {
  const endpoint = (acquire: (user: string, signal: AbortSignal) => Promise<Multiplexer>): McpEndpoint =>
    new McpEndpoint({ server: route.server, acquire, sessions: deps.sessions, maxBodyBytes: deps.maxBodyBytes, keepAliveMs: deps.keepAliveMs });
  switch (route.kind) {
    case 'hosted': {
      const acquire = async (user: string, signal: AbortSignal): Promise<Multiplexer> => {
        const ep = await deps.backend.endpoint(route.unit, route.scope === 'per-user' ? user : '', signal);
        if (ep.kind !== 'mcp') throw new Error(`server ${route.server}: HTTP endpoints are served by passthrough`);
        return ep.mux;
      };
      return { kind: 'mcp', route, endpoint: endpoint(acquire), close: () => undefined };
    }
    case 'remote': {
      if (route.transport === 'sse') {
        const upstream = new RemoteSse({ server: route.server, url: route.url, headers: route.headers.values, logger: deps.logger });
        return { kind: 'mcp', route, endpoint: endpoint(async () => upstream.mux), close: () => upstream.close() };
      }
      const passthrough = new Passthrough({ server: route.server, url: route.url, headers: route.headers.values, maxBodyBytes: deps.maxBodyBytes });
      return { kind: 'passthrough', route, passthrough, close: () => passthrough.close() };
    }
    case 'composite': {
      if (deps.composite === undefined) throw new Error('composite routes need a composite factory');
      return { kind: 'mcp', route, endpoint: deps.composite(route), close: () => undefined };
    }
  }
}

function sameRoute(a: Route, b: Route): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
