// One hosted instance as the pool holds it: berth's own multiplexed MCP
// connection, users' own connections (per-user headers), and readiness. The
// pool decides which instances serve; this module knows how one is reached.
import type { HttpTransport, ObservedInstance, UpstreamTransport } from '../../backends/backend.ts';
import type { MessageChannel } from '../mux/channel.ts';
import type { Unit } from '../../desired/types.ts';
import type { Logger } from '../../observe/log.ts';
import type { Callee } from '../../observe/trace/telemetry.ts';
import { httpCallee } from '../../observe/trace/telemetry.ts';
import type { ConnectionAuthorization, ConnectionStatus } from './http-upstream.ts';
import { HttpUpstream } from './http-upstream.ts';
import { Multiplexer } from '../mux/multiplex.ts';
import type { UserLink } from './user-links.ts';
import { UserLinks } from './user-links.ts';

/** Readiness of one upstream as status shows it, beside the backend's own state. */
export type UpstreamState = 'starting' | 'ready' | 'failing' | 'draining';

export interface UpstreamStatus {
  readonly unit: string;
  readonly instance: ObservedInstance;
  readonly state: UpstreamState;
  /** The raw user of a per-user instance, known only to this berth process. */
  readonly user?: string;
  readonly sessions: number;
  readonly pending: number;
  readonly lastError?: string;
  /** Said of a ready instance that is ready only for users' own sessions (it asks each user for credentials). */
  readonly note?: string;
  /** berth's own connection to an HTTP instance. */
  readonly connection?: ConnectionStatus;
  /** Set once berth gave up waiting for the instance (crash loop, startup timeout), until it next answers initialize. */
  readonly gaveUp?: true;
}

/**
 * One hosted instance's connections and what the pool knows of it. Read
 * anywhere, written only here (observe, touch, drain): one owner.
 */
export interface Upstream {
  readonly instance: ObservedInstance;
  readonly mux: Multiplexer;
  /** The HTTP connection to close with the upstream, once the endpoint is known. */
  readonly channel: HttpUpstream | undefined;
  /**
   * Why the instance counts as ready without having answered berth's own
   * initialize: it refused it (401, 403) for want of a user's credentials,
   * which users' own sessions carry. Undefined otherwise.
   */
  readonly asksCredentials: string | undefined;
  /** Waiters for the instance to become ready that way. */
  readonly credentialWaiters: Set<() => void>;
  /** Users' own connections to this instance, each with that user's headers. */
  readonly links: UserLinks<UserLink>;
  readonly user?: string;
  readonly draining: boolean;
  readonly lastUsed: number;
  /** Aborted when the upstream goes: stops its readiness wait. */
  readonly stop: AbortController;
}

type Held = { -readonly [K in keyof Upstream]: Upstream[K] };

/** The backend's newest view of the instance. */
export function observe(upstream: Upstream, instance: ObservedInstance): void {
  (upstream as Held).instance = instance;
}

/** A session was routed to it now: it is not idle. */
export function touch(upstream: Upstream, now: number): void {
  (upstream as Held).lastUsed = now;
}

/** Takes no new sessions from now on; false when it was draining already. */
export function startDraining(upstream: Upstream): boolean {
  if (upstream.draining) return false;
  (upstream as Held).draining = true;
  return true;
}

/** What connecting an instance needs from its unit's configuration; each read when used, so reloads apply. */
export interface UpstreamSettings {
  readonly logger: Logger;
  readonly now: () => number;
  /** How to reach the instance: the backend's endpoint, looked up until `signal` aborts. */
  readonly endpoint: (signal: AbortSignal) => Promise<UpstreamTransport>;
  /** Fixed headers of the unit's route, sent on berth's own connection. */
  readonly headers: () => Readonly<Record<string, string>>;
  readonly requestTimeoutMs: () => number;
  /** Whether users' own sessions carry their credentials as headers or OAuth tokens (then a 401/403 to berth means "up"). */
  readonly needsUserCredentials: () => boolean;
  /** berth as the OAuth client of a connection's user (undefined: berth's own connection, which only notes challenges). */
  readonly authorization?: (user: string | undefined) => ConnectionAuthorization | undefined;
  /** A user's label-safe name (see hashUser), for the names of their connections. */
  readonly userHash: (user: string) => string;
  /** The largest answer taken from the instance (listen.maxAnswerBytes); default 10 MiB. */
  readonly maxMessageBytes?: number;
  /** The backend's name, for spans. */
  readonly backend?: string;
}

/** Where an HTTP instance is now. */
type Locate = (signal: AbortSignal) => Promise<string>;

function httpUrlOf(transport: UpstreamTransport): string {
  if (transport.kind !== 'http') throw new Error('the instance no longer serves HTTP');
  return transport.url;
}

/** Hosted servers start in seconds: retry soon, then settle at a few seconds. */
const HOSTED_RETRY = { initialMs: 200, maxMs: 5_000 };

/**
 * Connects one instance: berth's own connection at once (an HTTP one retries
 * until the server answers), users' own connections on their first request.
 * `transport` skips the backend's endpoint lookup (a routed replica's).
 */
export function connectUpstream(unit: Unit, instance: ObservedInstance, settings: UpstreamSettings, user?: string, transport?: HttpTransport): Upstream {
  const { logger, now, requestTimeoutMs } = settings;
  const stop = new AbortController();
  const name = instance.userHash === undefined ? unit.name : `${unit.name}/${instance.userHash}`;
  const endpoint = transport === undefined ? settings.endpoint(stop.signal) : Promise.resolve(transport);
  // A backend's endpoint may move (a restarted container's host port): asked again after a failure. A routed replica's is the platform's to change.
  const locate = transport === undefined ? (signal: AbortSignal) => settings.endpoint(AbortSignal.any([signal, stop.signal])).then(httpUrlOf) : undefined;
  const { channel, http } = lazyChannel(endpoint, name, settings, settings.headers, unit.startupTimeoutMs, locate, settings.authorization?.(undefined));
  const callee = calleeOf(unit.name, endpoint, settings.backend, instance.id);
  const mux = new Multiplexer({ name, channel, logger, now, requestTimeoutMs, callee });
  const links = new UserLinks<UserLink>({ now, open: (owner, headers) => openUserLink(`${name}@${settings.userHash(owner)}`, unit.name, endpoint, headers, settings, unit.startupTimeoutMs, locate, settings.authorization?.(owner)) });
  const upstream: Held = { instance, mux, channel: undefined, asksCredentials: undefined, credentialWaiters: new Set(), links, draining: false, lastUsed: now(), stop, ...(user === undefined ? {} : { user }) };
  void http.then((c) => {
    upstream.channel = c;
    if (stop.signal.aborted) c?.close();
    c?.onStatus((s) => watchRefusal(upstream, s, settings));
  });
  endpoint.catch((err: unknown) => mux.fail((err as Error).message));
  if (isFailing(instance)) mux.fail(clientReason(instance));
  return upstream;
}

/** Closes the upstream's connections, berth's own and users', and stops its readiness wait. */
export function disconnect(upstream: Upstream): void {
  upstream.stop.abort();
  upstream.mux.close();
  upstream.links.close();
  upstream.channel?.close();
}

/**
 * berth's own connection to an instance was refused (401, 403) or answered
 * otherwise. For a unit whose users' own sessions carry their credentials,
 * a refusal means the server is up and asks for them: the instance is ready
 * for those sessions. A connection refused, a 5xx or a hang are still not.
 */
function watchRefusal(upstream: Held, status: ConnectionStatus, settings: UpstreamSettings): void {
  const refused = refusedCredentials(status) && settings.needsUserCredentials();
  const was = upstream.asksCredentials !== undefined;
  upstream.asksCredentials = refused ? `HTTP ${status.httpStatus} without a user's credentials` : undefined;
  if (!refused || was) return;
  settings.logger.info({ server: upstream.instance.unit, instance: upstream.instance.id, httpStatus: status.httpStatus }, 'instance asks each user for credentials; ready for users\' own sessions');
  for (const wake of [...upstream.credentialWaiters]) wake();
}

/** A user's own connection to an HTTP instance, sending their headers (which replace the route's fixed ones), and their token. */
function openUserLink(name: string, server: string, endpoint: Promise<UpstreamTransport>, headers: Readonly<Record<string, string>>, settings: UpstreamSettings, connectTimeoutMs: number, locate: Locate | undefined, authorization: ConnectionAuthorization | undefined): UserLink {
  const http = endpoint.then((t) => {
    if (t.kind === 'stdio') throw new Error('a stdio server cannot take per-user headers');
    return t;
  });
  const { channel, http: closable } = lazyChannel(http, name, settings, () => headers, connectTimeoutMs, locate, authorization);
  const mux = new Multiplexer({ name, channel, logger: settings.logger, now: settings.now, requestTimeoutMs: settings.requestTimeoutMs, callee: calleeOf(server, http, settings.backend) });
  http.catch((err: unknown) => mux.fail((err as Error).message));
  // A server that refused the user's credentials will refuse them again: the user's callers learn it at once, not after the ready wait.
  void closable.then((c) =>
    c?.onStatus((s) => {
      if (refusedCredentials(s)) mux.fail(`the server refused your ${authorization === undefined ? 'credentials (save new ones at /connect)' : 'token (authorize again at /connect)'}: ${s.lastError ?? `HTTP ${s.httpStatus}`}`);
    }),
  );
  return {
    mux,
    close: () => {
      mux.close();
      void closable.then((c) => c?.close());
    },
  };
}

/** How spans describe an instance: known fully once its endpoint is. */
function calleeOf(server: string, endpoint: Promise<UpstreamTransport>, backend: string | undefined, instance?: string): () => Callee {
  let callee: Callee = { server, transport: 'pipe', ...(backend === undefined ? {} : { backend }), ...(instance === undefined ? {} : { instance }) };
  void endpoint.then((t) => (callee = t.kind === 'stdio' ? callee : { ...callee, ...httpCallee(t.url) }), () => undefined);
  return () => callee;
}

/**
 * A channel usable at once while the backend's endpoint is still being
 * looked up (a container's published port): handlers register now, the real
 * transport joins when known.
 */
function lazyChannel(endpoint: Promise<UpstreamTransport>, name: string, settings: UpstreamSettings, headers: () => Readonly<Record<string, string>>, connectTimeoutMs: number, locate: Locate | undefined, authorization: ConnectionAuthorization | undefined): { channel: MessageChannel; http: Promise<HttpUpstream | undefined> } {
  const { logger, maxMessageBytes } = settings;
  const options = { ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }), ...(locate === undefined ? {} : { locate }), ...(authorization === undefined ? {} : { authorization }) };
  const real = endpoint.then((t) =>
    t.kind === 'stdio' ? t.channel : new HttpUpstream({ name, url: t.url, transport: t.transport, headers: () => ({ ...t.headers, ...headers() }), logger, connectTimeoutMs, retry: HOSTED_RETRY, quietUntilUp: true, ...options }),
  );
  let ready: MessageChannel | undefined;
  void real.then((c) => (ready = c), () => undefined);
  return {
    channel: {
      send: (message) => ready?.send(message) ?? false,
      onMessage: (h) => void real.then((c) => c.onMessage(h), () => undefined),
      onStart: (h) => void real.then((c) => c.onStart(h), () => undefined),
      onStop: (h) => void real.then((c) => c.onStop(h), () => undefined),
    },
    http: real.then((c) => (c instanceof HttpUpstream ? c : undefined), () => undefined),
  };
}

/** The server refused the connection's credentials (HTTP 401 or 403). */
function refusedCredentials(status: ConnectionStatus): boolean {
  return status.state === 'down' && (status.httpStatus === 401 || status.httpStatus === 403);
}

/** Ready: it answered berth's initialize, or it asks each user for credentials that users' own sessions carry. */
export function isReady(u: Upstream): boolean {
  return u.mux.info !== undefined || u.asksCredentials !== undefined;
}

/** Resolves once the upstream is ready (either way); rejects as `mux.ready` does. */
export function whenReady(u: Upstream, signal: AbortSignal): Promise<unknown> {
  if (u.asksCredentials !== undefined) return Promise.resolve();
  const settled = new AbortController();
  return new Promise((resolve, reject) => {
    const done = (): void => {
      u.credentialWaiters.delete(open);
      settled.abort();
    };
    const open = (): void => {
      done();
      resolve(undefined);
    };
    u.credentialWaiters.add(open);
    u.mux.ready(AbortSignal.any([signal, settled.signal])).then(
      (info) => {
        done();
        resolve(info);
      },
      (err: unknown) => {
        done();
        reject(err as Error);
      },
    );
  });
}

export function isFailing(instance: ObservedInstance): boolean {
  return instance.state === 'crash-looping' || instance.state === 'failed';
}

/**
 * Why an instance cannot serve, as clients may read it: the state and the
 * failure class. The server's own output stays in the log and in status.
 */
export function clientReason(instance: ObservedInstance): string {
  return `${instance.state}${instance.failure === undefined ? '' : ` (${instance.failure})`}; see berth status for its last error`;
}

/** The instance with the fewest sessions, shared and users' own; among equals, the one `turn` points at, so ties rotate. */
export function leastBusy(upstreams: readonly Upstream[], turn = 0): Upstream | undefined {
  let best: Upstream | undefined;
  for (let i = 0; i < upstreams.length; i++) {
    const u = upstreams[(turn + i) % upstreams.length] as Upstream;
    if (best === undefined || sessionsOf(u) < sessionsOf(best)) best = u;
  }
  return best;
}

function sessionsOf(u: Upstream): number {
  return u.mux.sessionCount + u.links.sessionCount;
}

/** Moves an instance's sessions, shared and users' own, to its replacement. */
export function handOver(from: Upstream, to: Upstream): void {
  from.mux.handOver(to.mux);
  from.links.handOver(to.links);
}

/** The upstream as status shows it. */
export function upstreamStatus(u: Upstream): UpstreamStatus {
  const failing = u.instance.state === 'crash-looping' || u.instance.state === 'failed' || u.instance.state === 'backoff';
  const state: UpstreamState = u.draining ? 'draining' : isReady(u) ? 'ready' : failing ? 'failing' : 'starting';
  // Operators see the backend's own words (a crashed server's stderr included); clients never do.
  const lastError = u.asksCredentials === undefined ? (u.instance.lastError ?? u.mux.lastError) : u.instance.lastError;
  const connection = u.channel?.status();
  return {
    unit: u.instance.unit,
    instance: u.instance,
    state,
    sessions: sessionsOf(u),
    pending: u.mux.pendingCount + u.links.pendingCount,
    ...(u.user === undefined ? {} : { user: u.user }),
    ...(lastError === undefined ? {} : { lastError }),
    ...(u.asksCredentials === undefined ? {} : { note: `asks each user for credentials (${u.asksCredentials}); ready for users' own sessions` }),
    ...(connection === undefined ? {} : { connection }),
    ...(u.mux.failing === undefined ? {} : { gaveUp: true as const }),
  };
}
