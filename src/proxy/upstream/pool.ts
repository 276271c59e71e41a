// The proxy's upstream pool: one multiplexed MCP connection per hosted
// instance, whatever backend runs it and whatever transport reaches it. The
// pool initializes instances, watches readiness, hands sessions over when a
// unit is replaced and drains instances before they are removed.
import { randomBytes } from 'node:crypto';
import type { Backend, HttpTransport, InstanceEvent, ObservedInstance, PlacementReplicas, ReadyReplica } from '../../backends/backend.ts';
import { hashUser } from '../../desired/hash.ts';
import type { BerthConfiguration } from '../../config/types.gen.ts';
import type { DesiredState, Route, Unit } from '../../desired/types.ts';
import type { Logger } from '../../observe/log.ts';
import { ProxyError } from '../../http/proxy-error.ts';
import type { Upstream, UpstreamStatus } from './instance-upstream.ts';
import { clientReason, connectUpstream, disconnect, handOver, isFailing, isReady, leastBusy, observe, startDraining, touch, upstreamStatus, whenReady } from './instance-upstream.ts';
import type { Multiplexer } from '../mux/multiplex.ts';
import { DEFAULT_REQUEST_TIMEOUT_MS } from '../mux/multiplex.ts';
import { ReadyReplicas, routedInstance } from './ready-replicas.ts';
import type { ServerOAuth } from './server-oauth.ts';
import { needsUserCredentials } from './user-headers.ts';

export interface PoolOptions {
  readonly backend: Backend;
  readonly logger: Logger;
  /** How long requests in flight on a replaced or removed instance may take before it goes. */
  readonly drainMs?: number;
  /** The saved values a user's own instance gets in its environment. */
  readonly credentials?: { get(user: string, server: string): Promise<Readonly<Record<string, string>>> };
  readonly sweepIntervalMs?: number;
  /** The largest answer taken from an HTTP instance; default 10 MiB. */
  readonly maxMessageBytes?: number;
  readonly now?: () => number;
  /** The installation's secret for user labels (see hashUser); without one, a random one of this pool. */
  readonly labelSecret?: string;
  /** berth as each user's OAuth client towards a hosted server (see serverOAuthOf); undefined where it is not. */
  readonly oauth?: (route: HostedRoute) => ServerOAuth | undefined;
}

/**
 * What the pool reads of an accepted config: its hosted routes (headers,
 * deadlines, idle timeout, instance cap, whether users bring credentials)
 * and the per-user instance limit. The controller pushes one per accepted
 * config, before its units converge, so an instance is connected with the
 * settings of the config that started it.
 */
export interface PoolConfig {
  readonly config: Readonly<BerthConfiguration>;
  readonly desired: DesiredState;
}

/** The pool's reading of a PoolConfig, indexed once per accepted config. */
interface Settings {
  readonly routes: ReadonlyMap<string, HostedRoute>;
  /** By unit: berth as each user's OAuth client towards it. */
  readonly oauth: ReadonlyMap<string, ServerOAuth>;
  /** Undefined until a config says: a pool nobody configured caps nothing. */
  readonly instancesPerUser: number | undefined;
}

export type HostedRoute = Route & { readonly kind: 'hosted' };

/** Per-user instances one user may run over all servers, unless `limits.instancesPerUser` says otherwise. */
const DEFAULT_INSTANCES_PER_USER = 10;
const NO_SETTINGS: Settings = { routes: new Map(), oauth: new Map(), instancesPerUser: undefined };

interface UnitEntry {
  unit: Unit;
  /** Instances serving new sessions. */
  serving: Upstream[];
  /** Instances at a newer spec, serving once all are ready. */
  next: Upstream[];
  readonly perUser: Map<string, Upstream>;
  /** Rotates the pick among equally busy instances, so requests without sessions spread too. */
  turn: number;
  /** Per-user starts in progress, shared by concurrent first requests, by user hash. */
  readonly starting: Map<string, Promise<Upstream>>;
  readonly startingUsers: Map<string, string>;
}

const DEFAULT_DRAIN_MS = 10_000;
/** How long a request waits for a unit the controller has not published yet. */
const PUBLISH_WAIT_MS = 30_000;

export class UpstreamPool {
  readonly #o: PoolOptions;
  #settings: Settings = NO_SETTINGS;
  readonly #units = new Map<string, UnitEntry>();
  readonly #byInstance = new Map<string, Upstream>();
  /** Requests for units not published yet, woken by `publish`. */
  readonly #waitingFor = new Map<string, Set<(entry: UnitEntry) => void>>();
  readonly #closing = new AbortController();
  readonly #now: () => number;
  readonly #userHash: (user: string) => string;
  readonly #sweeper: NodeJS.Timeout;
  readonly #watching: Promise<void>;
  /**
   * Set when the backend reports ready replicas (Kubernetes EndpointSlices):
   * then only those are connected, by placement, and one that leaves the set
   * ends its sessions.
   */
  readonly #routable: ReadyReplicas | undefined;
  readonly #following: Promise<void>;

  constructor(options: PoolOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const secret = options.labelSecret ?? randomBytes(32).toString('base64url');
    this.#userHash = (user) => hashUser(user, secret);
    this.#sweeper = setInterval(() => void this.sweepIdle(), options.sweepIntervalMs ?? 5_000).unref();
    this.#watching = this.#watch();
    this.#routable = options.backend.replicas === undefined ? undefined : new ReadyReplicas();
    this.#following = this.#followReplicas();
  }

  /** Takes the settings of an accepted config; connections and starts read them from now on. */
  configure(accepted: PoolConfig): void {
    const routes = new Map<string, HostedRoute>();
    const oauth = new Map<string, ServerOAuth>();
    // Only a server that speaks HTTP itself can challenge berth (one behind `berth bridge` speaks stdio).
    const http = new Set(accepted.desired.units.filter((u) => u.spec.runtime === 'container' || (u.spec.runtime === 'command' && u.spec.transport !== undefined)).map((u) => u.name));
    for (const route of accepted.desired.routes) {
      if (route.kind !== 'hosted') continue;
      routes.set(route.unit, route);
      const client = http.has(route.unit) ? this.#o.oauth?.(route) : undefined;
      if (client !== undefined) oauth.set(route.unit, client);
    }
    this.#settings = { routes, oauth, instancesPerUser: accepted.config.limits?.instancesPerUser ?? DEFAULT_INSTANCES_PER_USER };
  }

  /**
   * The backend now runs these instances of a unit (all of them, any spec).
   * Instances at the unit's spec are connected; once every new one is ready
   * they take new sessions and the others are handed over, drained and removed.
   */
  publish(unit: Unit, observed: readonly ObservedInstance[]): void {
    let entry = this.#units.get(unit.name);
    if (entry === undefined) {
      entry = { unit, serving: [], next: [], perUser: new Map(), turn: 0, starting: new Map(), startingUsers: new Map() };
      this.#units.set(unit.name, entry);
    }
    for (const waiter of this.#waitingFor.get(unit.name) ?? []) waiter(entry);
    this.#waitingFor.delete(unit.name);
    const specChanged = entry.unit.specHash !== unit.specHash;
    entry.unit = unit;
    for (const instance of observed) {
      const held = this.#byInstance.get(instance.id);
      if (held !== undefined) observe(held, instance);
    }
    if (this.#routable !== undefined) {
      // The platform says which replicas are reachable; the rollout removes old ones itself.
      for (const replicas of this.#routable.ofUnit(unit.name)) this.#admitReplicas(entry, replicas, specChanged);
      this.#promoteWhenReady(entry);
      return;
    }
    const current = observed.filter((i) => i.specHash === unit.specHash);
    const wanted = new Set(current.map((i) => i.id));
    for (const instance of current) if (!this.#byInstance.has(instance.id)) this.#admit(entry, instance, undefined, specChanged);
    // Surplus replicas of the current spec are gone from the backend's answer: retire them.
    for (const u of [...entry.serving]) if (u.instance.specHash === unit.specHash && !wanted.has(u.instance.id)) void this.#retire(entry, u);
    for (const stale of observed.filter((i) => i.specHash !== unit.specHash && !this.#byInstance.has(i.id))) {
      // Left over from an earlier berth at another spec: nothing serves it here.
      void this.#remove(stale.id);
    }
    this.#promoteWhenReady(entry);
  }

  /**
   * Connects an instance and gives it its place: its user's, serving, or next
   * (a newer spec, serving once all of it is ready). An instance at an older
   * spec (a rollout in progress) serves only beside others of its age.
   */
  #admit(entry: UnitEntry, instance: ObservedInstance, transport: HttpTransport | undefined, specChanged: boolean): void {
    const current = instance.specHash === entry.unit.specHash;
    if (!current && (instance.userHash !== undefined || entry.next.length > 0 || entry.serving.some((u) => u.instance.specHash === entry.unit.specHash))) return;
    const upstream = this.#connect(entry.unit, instance, undefined, transport);
    if (instance.userHash !== undefined) entry.perUser.set(instance.userHash, upstream);
    else if ((entry.serving.length === 0 && entry.next.length === 0) || !current) entry.serving.push(upstream);
    else if (entry.serving.every((u) => u.instance.specHash === entry.unit.specHash) && !specChanged) entry.serving.push(upstream);
    else entry.next.push(upstream);
  }

  /** Ready replicas of a placement not connected yet join; a user's own joins only when no start of theirs runs. */
  #admitReplicas(entry: UnitEntry, replicas: PlacementReplicas, specChanged: boolean): void {
    const hash = replicas.userHash;
    if (hash !== undefined && (entry.perUser.has(hash) || entry.starting.has(hash))) return;
    for (const replica of replicas.ready) {
      if (this.#byInstance.has(replica.instanceId)) continue;
      this.#admit(entry, routedInstance(entry.unit.name, replica, hash), replica.transport, specChanged);
      if (hash !== undefined) return;
    }
  }

  /** A unit left the config: its sessions close once in-flight requests are answered, then its instances go. */
  async retire(unitName: string, signal: AbortSignal): Promise<void> {
    const entry = this.#units.get(unitName);
    if (entry === undefined) return;
    this.#units.delete(unitName);
    const all = [...entry.serving, ...entry.next, ...entry.perUser.values()];
    await Promise.all(all.map((u) => this.#drainAndRemove(u, signal)));
  }

  /**
   * The multiplexer serving `user` on a unit; starts the user's own instance
   * on first use. With `headers` (the user's own, for an HTTP instance) it is
   * the user's own connection to the instance, carrying them on every request.
   */
  async acquire(unitName: string, user: string, signal: AbortSignal, headers?: Readonly<Record<string, string>>): Promise<Multiplexer> {
    const upstream = await this.#upstreamFor(unitName, user, signal);
    const oauth = this.#settings.oauth.get(unitName);
    // An HTTP instance may answer berth's own connection with a Bearer challenge, which decides how this
    // user connects (and where to authorize): it is waited for first.
    if (oauth !== undefined && !isReady(upstream)) await whenReady(upstream, AbortSignal.any([signal, upstream.stop.signal]));
    if (oauth?.applies() !== true) return headers === undefined ? upstream.mux : upstream.links.get(user, headers).mux;
    // The server takes each user's token: without one the user is sent to authorize before anything of theirs reaches the instance.
    await oauth.connection(user).token();
    return upstream.links.get(user, headers ?? this.#settings.routes.get(unitName)?.headers.values ?? {}).mux;
  }

  async #upstreamFor(unitName: string, user: string, signal: AbortSignal): Promise<Upstream> {
    // A route can be served before its unit converged (right after start or a reload): wait for it, briefly.
    const entry = this.#units.get(unitName) ?? (await this.#published(unitName, signal));
    if (entry.unit.scope === 'shared') {
      // Routed over ready replicas, a server whose pods are not ready yet is waited for, like an unpublished one.
      if (entry.serving.length === 0 && this.#routable !== undefined) await this.#routable.first(entry.unit, undefined, AbortSignal.any([signal, this.#closing.signal, AbortSignal.timeout(PUBLISH_WAIT_MS)]), this.#closing.signal);
      // A user with an own connection stays on its instance; anyone else goes where the fewest sessions are.
      const ready = entry.serving.filter(isReady);
      const pick = entry.serving.find((u) => u.links.has(user)) ?? leastBusy(ready.length > 0 ? ready : entry.serving, entry.turn++);
      if (pick === undefined) throw new ProxyError('server_not_running', `server ${unitName} has no instance yet`);
      touch(pick, this.#now());
      return pick;
    }
    const hash = this.#userHash(user);
    const existing = entry.perUser.get(hash);
    if (existing !== undefined && existing.instance.specHash === entry.unit.specHash) {
      touch(existing, this.#now());
      return existing;
    }
    let starting = entry.starting.get(hash);
    if (starting === undefined) {
      this.#checkLimits(entry, hash);
      starting = this.#startFor(entry, user, hash).finally(() => {
        entry.starting.delete(hash);
        entry.startingUsers.delete(hash);
      });
      entry.starting.set(hash, starting);
      entry.startingUsers.set(hash, user);
    }
    // Each caller waits racing only its own signal: one leaving never fails the others.
    const upstream = await raceSignal(starting, signal);
    touch(upstream, this.#now());
    return upstream;
  }

  /** The unit's entry once the controller publishes it, within the ready wait. */
  #published(unitName: string, signal: AbortSignal): Promise<UnitEntry> {
    return new Promise((resolve, reject) => {
      const waiters = this.#waitingFor.get(unitName) ?? new Set();
      this.#waitingFor.set(unitName, waiters);
      const give = (err: ProxyError): void => {
        cleanup();
        reject(err);
      };
      const timer = setTimeout(() => give(new ProxyError('server_not_running', `server ${unitName} has no instance yet; see berth status`)), PUBLISH_WAIT_MS);
      const onAbort = (): void => give(new ProxyError('start_aborted', 'the client went away'));
      const waiter = (entry: UnitEntry): void => {
        cleanup();
        resolve(entry);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        waiters.delete(waiter);
      };
      waiters.add(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Every connected upstream, including ones still starting or draining. */
  status(): readonly UpstreamStatus[] {
    return [...this.#byInstance.values()].map(upstreamStatus);
  }

  /**
   * A user's credentials for a unit changed. Their own connections (made with
   * their headers) close; when an environment value changed, their own
   * instance goes too. Sessions end, clients reconnect, and the next request
   * uses the new values. Nobody else's instance or connection is touched.
   */
  async renew(unitName: string, user: string, names?: readonly string[]): Promise<void> {
    const entry = this.#units.get(unitName);
    if (entry === undefined) return;
    for (const u of [...entry.serving, ...entry.next, ...entry.perUser.values()]) u.links.drop(user);
    const upstream = entry.perUser.get(this.#userHash(user));
    const inEnv = names === undefined || entry.unit.spec.env.fromUser.some((c) => names.includes(c.name));
    if (upstream === undefined || !inEnv) return;
    entry.perUser.delete(this.#userHash(user));
    this.#o.logger.info({ server: unitName, instance: upstream.instance.id }, 'credentials changed; replacing the user\'s instance');
    await this.#drainAndRemove(upstream, AbortSignal.timeout(this.#drainMs()));
  }

  /** Per-user starts in progress (the backend may not list them yet), for status. */
  starting(): readonly { readonly unit: string; readonly user: string }[] {
    return [...this.#units].flatMap(([unit, entry]) => [...entry.starting.keys()].map((hash) => ({ unit, user: entry.startingUsers.get(hash) ?? hash })));
  }

  /** Stops per-user instances unused for longer than their server's idle timeout. */
  async sweepIdle(): Promise<void> {
    const now = this.#now();
    for (const upstream of this.#byInstance.values()) upstream.links.sweep();
    for (const [name, entry] of this.#units) {
      const timeout = this.#settings.routes.get(name)?.idleTimeoutMs;
      if (timeout === undefined) continue;
      for (const [hash, upstream] of entry.perUser) {
        if (now - Math.max(upstream.lastUsed, upstream.mux.lastActivity(), upstream.links.lastActivity()) < timeout) continue;
        entry.perUser.delete(hash);
        this.#o.logger.info({ server: name, instance: upstream.instance.id }, 'stopping idle instance');
        await this.#drainAndRemove(upstream, AbortSignal.timeout(this.#drainMs()));
      }
    }
  }

  /** Closes every connection and aborts starts in progress. Instances stay with the backend, which decides their fate. */
  async close(): Promise<void> {
    this.#closing.abort(new ProxyError('upstream_closed', 'berth is shutting down'));
    clearInterval(this.#sweeper);
    for (const upstream of this.#byInstance.values()) disconnect(upstream);
    this.#byInstance.clear();
    this.#units.clear();
    await Promise.all([this.#watching, this.#following]);
  }

  /** A new per-user instance must fit both caps; the error says which one is full. */
  #checkLimits(entry: UnitEntry, hash: string): void {
    const perUnit = this.#settings.routes.get(entry.unit.name)?.maxInstances;
    const ofUnit = entry.perUser.size + entry.starting.size;
    if (perUnit !== undefined && ofUnit >= perUnit) {
      throw new ProxyError('instance_limit', `server ${entry.unit.name} runs its limit of ${perUnit} users' instances; try again once one stops after its idle timeout`);
    }
    const perUser = this.#settings.instancesPerUser;
    if (perUser === undefined) return;
    let ofUser = 0;
    for (const other of this.#units.values()) ofUser += (other.perUser.has(hash) ? 1 : 0) + (other.starting.has(hash) ? 1 : 0);
    if (ofUser >= perUser) throw new ProxyError('instance_limit', `you have ${ofUser} instances running, your limit; try again once one stops after its idle timeout`);
  }

  async #startFor(entry: UnitEntry, user: string, hash: string): Promise<Upstream> {
    const unit = entry.unit;
    // The start belongs to no caller: its own deadline and shutdown end it.
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(unit.startupTimeoutMs)]);
    const env = (await this.#o.credentials?.get(user, unit.name)) ?? {};
    const missing = unit.spec.env.fromUser.filter((c) => c.required && env[c.name] === undefined).map((c) => c.name);
    if (missing.length > 0) throw new ProxyError('credentials_missing', `server ${unit.name} needs credentials you have not supplied: ${missing.join(', ')}`, { missing: { server: unit.name, names: missing } });
    // A failure from an earlier start is not this one's.
    this.#routable?.recover(unit.name, hash);
    const [instance] = await this.#o.backend.ensure({ unit, user: { hash, env } }, signal);
    if (instance === undefined) throw new ProxyError('server_not_running', `server ${unit.name}: the backend started no instance`);
    const upstream = this.#routable === undefined ? (this.#byInstance.get(instance.id) ?? this.#connect(unit, instance, user)) : await this.#connectReady(this.#routable, unit, instance, user, hash, signal);
    try {
      await whenReady(upstream, AbortSignal.any([signal, upstream.stop.signal]));
    } catch (err) {
      await this.#drainAndRemove(upstream, AbortSignal.timeout(0));
      throw err;
    }
    if (this.#units.get(unit.name) !== entry || entry.unit.specHash !== unit.specHash) {
      await this.#drainAndRemove(upstream, AbortSignal.timeout(0));
      throw new ProxyError('upstream_unavailable', `server ${unit.name} changed while starting; try again`);
    }
    const previous = entry.perUser.get(hash);
    entry.perUser.set(hash, upstream);
    if (previous !== undefined && previous !== upstream) {
      handOver(previous, upstream);
      void this.#drainAndRemove(previous, AbortSignal.timeout(this.#drainMs()));
    }
    return upstream;
  }

  /** The user's first ready replica, connected; the instance `ensure` made goes when none becomes ready in time. */
  async #connectReady(routable: ReadyReplicas, unit: Unit, instance: ObservedInstance, user: string, hash: string, signal: AbortSignal): Promise<Upstream> {
    let replica: ReadyReplica;
    try {
      replica = await routable.first(unit, hash, signal, this.#closing.signal);
    } catch (err) {
      await this.#remove(instance.id);
      throw err;
    }
    return this.#byInstance.get(replica.instanceId) ?? this.#connect(unit, routedInstance(unit.name, replica, hash), user, replica.transport);
  }

  #connect(unit: Unit, instance: ObservedInstance, user?: string, transport?: HttpTransport): Upstream {
    const o = this.#o;
    const upstream = connectUpstream(unit, instance, {
      logger: o.logger,
      now: this.#now,
      endpoint: (stop) => o.backend.endpoint(instance.id, AbortSignal.any([stop, this.#closing.signal])),
      headers: () => this.#settings.routes.get(unit.name)?.headers.values ?? {},
      requestTimeoutMs: () => this.#settings.routes.get(unit.name)?.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      needsUserCredentials: () => {
        const route = this.#settings.routes.get(unit.name);
        return route !== undefined && (needsUserCredentials(route) || this.#settings.oauth.get(unit.name)?.applies() === true);
      },
      authorization: (user) => this.#settings.oauth.get(unit.name)?.connection(user),
      userHash: this.#userHash,
      ...(o.maxMessageBytes === undefined ? {} : { maxMessageBytes: o.maxMessageBytes }),
      backend: o.backend.name,
    }, user, transport);
    this.#byInstance.set(instance.id, upstream);
    this.#reportSlowStart(unit, upstream);
    return upstream;
  }

  /**
   * An instance not ready within its unit's startup timeout is marked
   * failing: callers get the reason at once instead of each waiting. It stays
   * connected, and serves if it becomes ready later.
   */
  #reportSlowStart(unit: Unit, upstream: Upstream): void {
    const deadline = AbortSignal.timeout(unit.startupTimeoutMs);
    const signal = AbortSignal.any([upstream.stop.signal, this.#closing.signal, deadline]);
    whenReady(upstream, signal).catch(() => {
      // A failure the pool was told about (crash loop) already speaks for itself.
      if (!deadline.aborted || upstream.stop.signal.aborted || this.#closing.signal.aborted || isReady(upstream)) return;
      const seconds = Math.round(unit.startupTimeoutMs / 1000);
      const cause = upstream.mux.lastError;
      const reason = `did not become ready within ${seconds} s${cause === undefined ? '' : `: ${cause}`}`;
      this.#o.logger.warn({ server: unit.name, instance: upstream.instance.id, reason }, 'instance not ready in time');
      upstream.mux.fail(reason);
    });
  }

  /** Once every instance of a new spec is ready, it serves; the old ones hand over and go. */
  #promoteWhenReady(entry: UnitEntry): void {
    const next = entry.next;
    if (next.length === 0) return;
    const signal = AbortSignal.any([this.#closing.signal, ...next.map((u) => u.stop.signal)]);
    void Promise.all(next.map((u) => whenReady(u, signal))).then(
      () => {
        if (entry.next !== next || this.#units.get(entry.unit.name) !== entry) return;
        const old = entry.serving;
        entry.serving = next;
        entry.next = [];
        old.forEach((u, i) => {
          const heir = next[i % next.length];
          if (heir !== undefined) handOver(u, heir);
          void this.#drainAndRemove(u, AbortSignal.timeout(this.#drainMs()));
        });
        this.#o.logger.info({ server: entry.unit.name, specHash: entry.unit.specHash }, 'replacement ready; sessions handed over');
      },
      () => undefined, // status shows why; the old instances keep serving
    );
  }

  async #retire(entry: UnitEntry, upstream: Upstream): Promise<void> {
    entry.serving = entry.serving.filter((u) => u !== upstream);
    const heir = leastBusy(entry.serving);
    if (heir !== undefined) handOver(upstream, heir);
    await this.#drainAndRemove(upstream, AbortSignal.timeout(this.#drainMs()));
  }

  async #drainAndRemove(upstream: Upstream, signal: AbortSignal): Promise<void> {
    await this.#drainAndDisconnect(upstream, signal);
    await this.#remove(upstream.instance.id);
  }

  /** Lets requests in flight, shared and users' own, get their answers (within `signal`), then closes the upstream's connections. */
  async #drainAndDisconnect(upstream: Upstream, signal: AbortSignal): Promise<void> {
    startDraining(upstream);
    const until = AbortSignal.any([signal, this.#closing.signal]);
    await Promise.all([upstream.mux.drain(until), upstream.links.drain(until)]);
    disconnect(upstream);
    if (this.#byInstance.get(upstream.instance.id) === upstream) this.#byInstance.delete(upstream.instance.id);
  }

  async #remove(instanceId: string): Promise<void> {
    try {
      await this.#o.backend.remove(instanceId, AbortSignal.timeout(60_000));
    } catch (err) {
      this.#o.logger.warn({ instance: instanceId, err: (err as Error).message }, 'could not remove instance; the next resync retries');
    }
  }

  async #watch(): Promise<void> {
    try {
      for await (const event of this.#o.backend.events(this.#closing.signal)) this.#observe(event);
    } catch (err) {
      if (!this.#closing.signal.aborted) this.#o.logger.error({ err: (err as Error).message }, 'backend events ended; status may lag until the next resync');
    }
  }

  #observe(event: InstanceEvent): void {
    if (event.kind !== 'changed') return;
    const upstream = this.#byInstance.get(event.instance.id);
    // A start waiting for a pod that keeps failing gets the reason now, not at its deadline.
    if (isFailing(event.instance)) this.#routable?.fail(event.instance, clientReason(event.instance));
    else this.#routable?.recover(event.instance.unit, event.instance.userHash);
    if (upstream === undefined) return;
    // Started again behind berth's back (docker restart): its address may have changed, and the old connection is dead.
    const restarted = event.instance.state === 'running' && upstream.instance.state !== 'creating' && event.instance.startedAt !== upstream.instance.startedAt;
    observe(upstream, event.instance);
    if (restarted) upstream.channel?.reconnect('the instance restarted');
    // Waiting on a server that keeps dying only delays the answer.
    if (isFailing(event.instance)) upstream.mux.fail(clientReason(event.instance));
  }

  async #followReplicas(): Promise<void> {
    const routable = this.#routable;
    const replicas = this.#o.backend.replicas?.(this.#closing.signal);
    if (replicas === undefined || routable === undefined) return;
    try {
      for await (const update of replicas) this.#route(routable, update);
    } catch (err) {
      if (!this.#closing.signal.aborted) this.#o.logger.error({ err: (err as Error).message }, 'ready replicas ended; new replicas are not routed to');
    }
  }

  /** A placement's ready set changed: newcomers join, and replicas that left end their sessions. */
  #route(routable: ReadyReplicas, update: PlacementReplicas): void {
    const gone = routable.update(update);
    // Newcomers first: an old pod a rollout retires in the same update has an heir.
    const entry = this.#units.get(update.unit);
    if (entry !== undefined) this.#admitReplicas(entry, update, false);
    for (const id of gone) {
      const upstream = this.#byInstance.get(id);
      if (upstream !== undefined) void this.#lose(upstream);
    }
    if (entry !== undefined) this.#promoteWhenReady(entry);
    routable.wake(update.unit, update.userHash);
  }

  /**
   * A replica the platform stopped routing to (its pod went, is terminating
   * or not ready): requests in flight get their answers within the drain
   * time, then its sessions close, so their clients get 404 and initialize
   * again on a ready replica. A session never moves silently to a pod that
   * has not seen it, with one exception, the replacement berth promises: a
   * pod of an older spec that a rollout retires hands its sessions to one at
   * the current spec, and their clients are told to list again.
   */
  async #lose(upstream: Upstream): Promise<void> {
    if (!startDraining(upstream)) return;
    const entry = this.#units.get(upstream.instance.unit);
    let heir: Upstream | undefined;
    if (entry !== undefined) {
      entry.serving = entry.serving.filter((u) => u !== upstream);
      entry.next = entry.next.filter((u) => u !== upstream);
      for (const [hash, u] of entry.perUser) if (u === upstream) entry.perUser.delete(hash);
      // Nothing older serves any more: the newer spec does, ready or not.
      if (entry.serving.length === 0 && entry.next.length > 0) [entry.serving, entry.next] = [entry.next, []];
      const replaced = upstream.instance.specHash !== entry.unit.specHash;
      heir = replaced ? leastBusy([...entry.serving, ...entry.next].filter((u) => u.instance.specHash === entry.unit.specHash)) : undefined;
    }
    this.#o.logger.info({ server: upstream.instance.unit, instance: upstream.instance.id, sessions: upstream.mux.sessionCount, handedOver: heir !== undefined }, 'replica no longer ready');
    if (heir !== undefined) handOver(upstream, heir);
    await this.#drainAndDisconnect(upstream, AbortSignal.timeout(this.#drainMs()));
  }

  #drainMs(): number {
    return this.#o.drainMs ?? DEFAULT_DRAIN_MS;
  }
}

/** A start that one caller's leaving abandons for that caller alone. */
function raceSignal<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new ProxyError('start_aborted', 'the client went away'));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new ProxyError('start_aborted', 'the client went away'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
