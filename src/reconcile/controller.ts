import type { Backend, ObservedInstance } from '../backends/backend.ts';
import type { LoadedConfig, ReadResult } from '../config/load.ts';
import { readConfigFileAsync } from '../config/load-async.ts';
import { restartRequired } from '../config/restart.ts';
import type { BerthConfiguration } from '../config/types.gen.ts';
import type { ConfigIssue } from '../config/issues.ts';
import { formatIssue } from '../config/issues.ts';
import type { SourceVersion } from '../config/version.ts';
import { changedSince } from '../config/version.ts';
import { resolveDesiredState } from '../desired/resolve.ts';
import type { DesiredState, Unit } from '../desired/types.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { UnitUpstreams } from './apply.ts';
import type { ObservedUnit } from './plan.ts';
import { planChanges } from './plan.ts';
import type { UnitStatus } from './units.ts';
import { UnitReconciler } from './units.ts';
import { ConfigWatcher } from './watch.ts';

/** What every reload outcome says: when, why, and the generation serving after it. */
interface ReloadBase {
  readonly at: string;
  readonly reason: string;
  readonly generation: number;
}

/**
 * How a reload ended: the candidate was applied; applied while something
 * else went wrong (the backend could not list: every unit converges on its
 * own); or rejected whole, the last good config still serving.
 */
export type ReloadResult =
  | (ReloadBase & {
      readonly kind: 'applied';
      /** Settings that changed in the file but apply only after a restart. */
      readonly needsRestart?: readonly string[];
    })
  | (ReloadBase & { readonly kind: 'applied-with-errors'; readonly errors: readonly string[]; readonly needsRestart?: readonly string[] })
  | (ReloadBase & { readonly kind: 'rejected'; readonly errors: readonly string[] });

/** Where the controller publishes the routes of each accepted config; the proxy holds the table. */
export interface RouteSink {
  swap(desired: DesiredState, generation: number): void;
}

/**
 * Where the controller publishes the `auth` section of each accepted config;
 * serve holds the gate. `prepare` builds beside the running one and may
 * refuse the candidate; `swap` happens together with the route table's.
 */
export interface AuthSink {
  /** Checked against the listen settings berth runs with, which a reload does not change. */
  prepare(config: BerthConfiguration): PreparedAuth;
}

export type PreparedAuth =
  | { readonly kind: 'rejected'; readonly errors: readonly string[] }
  | { readonly kind: 'ready'; readonly changed: boolean; swap(): void };

export interface ControllerOptions {
  readonly file: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly backend: Backend;
  readonly upstreams: UnitUpstreams;
  readonly routes: RouteSink;
  /** Without one, `auth` is read once at start-up by whoever serves. */
  readonly auth?: AuthSink;
  /** Called in the turn an accepted config's routes and auth took effect (for sessions it no longer admits). */
  readonly onApplied?: () => void;
  /** The file watch, armed before the first read; without one, `start` arms its own before reading. */
  readonly watcher?: ConfigWatcher;
  readonly debounceMs?: number;
  /** Period of the level-based resync that repairs drift and reads the file again when it changed. */
  readonly resyncMs?: number;
  /** Bound of one backend list; a daemon that does not answer fails the reload, not berth. */
  readonly listTimeoutMs?: number;
  /** Bound of the wait for new units' first attempt before their routes go live (then requests wait in the pool). */
  readonly provisionTimeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Plans and applies: on start, when a file it read changed, on SIGHUP,
 * periodically and on backend events. A candidate that fails validation is
 * rejected whole and the last good one keeps serving; an accepted one queues
 * its unit changes with the unit reconciler, waits (bounded) for new units'
 * first attempts and swaps the route table and gate last. Nothing it meets, a
 * broken file or a backend that throws, ends berth.
 */
export class Controller {
  readonly #o: ControllerOptions;
  readonly #units: UnitReconciler;
  readonly #watcher: ConfigWatcher;
  readonly #closing = new AbortController();
  #loaded: LoadedConfig | undefined;
  /** The files the last read used, as read, accepted or not: what the watch and the resync compare. */
  #read: readonly SourceVersion[] = [];
  #desired: DesiredState | undefined;
  #generation = 0;
  #lastReload: ReloadResult | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #resync: NodeJS.Timeout | undefined;
  #events: Promise<void> | undefined;

  constructor(options: ControllerOptions) {
    this.#o = options;
    this.#units = new UnitReconciler({ backend: options.backend, upstreams: options.upstreams, logger: options.logger });
    this.#watcher = options.watcher ?? new ConfigWatcher({ file: options.file, logger: options.logger, ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }) });
  }

  get config(): LoadedConfig | undefined {
    return this.#loaded;
  }

  get desired(): DesiredState | undefined {
    return this.#desired;
  }

  get lastReload(): ReloadResult | undefined {
    return this.#lastReload;
  }

  /** Convergence per unit: ok, pending, retrying (with the reason) or failed. */
  get units(): ReadonlyMap<string, UnitStatus> {
    return this.#units.status();
  }

  /** Resolves when every queued unit has had its attempt; tests and start-up use it. */
  settled(): Promise<void> {
    return this.#units.idle();
  }

  /** Reloads serially: a reload requested during another runs after it, against the file as it is then. Never rejects. */
  reload(reason: string): Promise<ReloadResult> {
    return this.#serially(() => this.#reload(reason)).catch((err: unknown) => this.#fail(reason, err));
  }

  /**
   * Reads the file again when it is no longer the version last read, then
   * re-plans against what the backend reports and repairs drift. Level-based:
   * a file event the watch lost is found here. Never rejects.
   */
  resync(reason = 'resync'): Promise<void> {
    return this.#serially(async () => {
      if (this.#closing.signal.aborted) return;
      if (changedSince(this.#read)) await this.#reload(`${reason}: file changed`).catch((err: unknown) => this.#fail(reason, err));
      const desired = this.#desired;
      if (desired === undefined) return;
      const snapshot = await this.#list();
      const plan = planChanges(desired, { units: observedUnits(snapshot, desired, this.#units.status()), routes: desired.routes });
      // Repair keeps each unit's backoff, and a unit that failed terminally waits for a config change.
      const drifted = plan.actions.filter((a) => a.kind !== 'keep' && this.#units.status().get(a.unit.name)?.outcome.kind !== 'failed').map((a) => a.unit.name);
      if (drifted.length === 0) return;
      this.#o.logger.info({ reason, drifted }, 'resync found drift; converging');
      this.#units.requeue(drifted, snapshot);
    }).catch((err: unknown) => {
      this.#o.logger.warn({ reason, err: (err as Error).message }, 'resync failed; trying again at the next one');
    });
  }

  /**
   * Applies the first config, then follows the file and the backend: the
   * watch (armed before `first` was read, so nothing changed since goes
   * unseen), the periodic resync and the backend's events. Without `first`
   * it arms its own watch and reads the file. Never rejects.
   */
  async start(first?: ReadResult): Promise<ReloadResult> {
    if (this.#o.watcher === undefined) this.#watcher.start();
    const result = await this.#serially(() => (first === undefined ? this.#reload('start') : this.#apply('start', first))).catch((err: unknown) => this.#fail('start', err));
    this.#watcher.onChange(() => void this.#reloadIfChanged('file changed'));
    void this.#reloadIfChanged('file changed');
    this.#resync = setInterval(() => void this.resync(), this.#o.resyncMs ?? 60_000).unref();
    this.#events = this.#followEvents();
    return result;
  }

  async close(): Promise<void> {
    this.#closing.abort();
    clearInterval(this.#resync);
    await this.#watcher.close();
    await this.#units.close();
    await this.#events;
  }

  #serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Reads the file when it is no longer the version last read; a watch event that says too much costs a stat. */
  #reloadIfChanged(reason: string): Promise<unknown> {
    return this.#serially(() => (changedSince(this.#read) ? this.#reload(reason) : Promise.resolve(undefined))).catch((err: unknown) => this.#fail(reason, err));
  }

  async #reload(reason: string): Promise<ReloadResult> {
    let read: ReadResult;
    try {
      // Parsed off the event loop: a large file never stalls the proxy.
      read = await readConfigFileAsync(this.#o.file, this.#o.env, this.#closing.signal);
    } catch (err) {
      return this.#reject(this.#o.logger.child({ reloadId: this.#generation + 1, reason }), reason, [(err as Error).message]);
    }
    return this.#apply(reason, read.ok ? read : { ...read, issues: read.issues.map(whileServing) });
  }

  async #apply(reason: string, read: ReadResult): Promise<ReloadResult> {
    const log = this.#o.logger.child({ reloadId: this.#generation + 1, reason });
    this.#read = read.sources;
    this.#watcher.follow(read.sources.map((s) => s.path));
    if (!read.ok) return this.#reject(log, reason, read.issues.map(formatIssue));
    const loaded = read.value;
    const previous = this.#loaded;
    const needsRestart = previous === undefined ? [] : restartRequired(previous.config, loaded.config);
    const backendType = loaded.config.backend?.type ?? 'local';
    if (backendType !== this.#o.backend.name) {
      return this.#reject(log, reason, [`${this.#o.file}: backend ${backendType} differs from the running backend ${this.#o.backend.name}; changing backends needs a restart`]);
    }
    const auth = this.#o.auth?.prepare(loaded.config);
    if (auth?.kind === 'rejected') return this.#reject(log, reason, auth.errors.map((e) => `${this.#o.file}: ${e}`));
    if (needsRestart.length > 0) log.warn({ needsRestart }, 'changed settings apply only after a restart; the running values stay');
    const desired = resolveDesiredState(loaded);
    // Accepted from here on: the pool connects this config's units with this config's settings.
    this.#o.upstreams.configure({ config: loaded.config, desired });
    const previousDesired = this.#desired;
    const errors: string[] = [];
    let snapshot: readonly ObservedInstance[] | undefined;
    try {
      snapshot = await this.#list();
    } catch (err) {
      // Plan blind: every unit converges itself and retries until the backend answers.
      errors.push(`backend ${this.#o.backend.name}: ${(err as Error).message}`);
      log.error({ err: (err as Error).message }, 'backend list failed; converging every unit');
    }
    const names =
      snapshot === undefined
        ? new Set([...desired.units.map((u) => u.name), ...(previousDesired?.units.map((u) => u.name) ?? [])])
        : planChanges(desired, { units: observedUnits(snapshot, previousDesired ?? desired, this.#units.status()), routes: previousDesired?.routes ?? [] })
            .actions.filter((a) => a.kind !== 'keep')
            .map((a) => a.unit.name);
    // Units this process never converged (adopted after a restart) must still reach the pool.
    const unknown = desired.units.filter((u) => !this.#units.status().has(u.name)).map((u) => u.name);
    const changed = [...new Set([...names, ...unknown])];
    if (changed.length > 0) log.info({ units: changed }, 'applying plan');
    this.#units.enqueue(desired.units, changed, snapshot);
    // Routes go live once their units are provisioned (see attempted), so a request never waits for a unit that was never started.
    const provisioning = changed.filter((name) => desired.units.some((u) => u.name === name));
    await this.#units.attempted(provisioning, AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#o.provisionTimeoutMs ?? 30_000)]));
    // Last: once the routes change nothing above can fail any more.
    const generation = ++this.#generation;
    this.#o.routes.swap(desired, generation);
    // In the same turn as the routes: no request sees new routes behind an old gate, or the reverse.
    auth?.swap();
    this.#o.onApplied?.();
    if (auth?.changed === true && previous !== undefined) log.info({ providers: (loaded.config.auth ?? []).map((p) => p.type) }, 'auth settings applied');
    this.#loaded = previous === undefined ? loaded : { ...loaded, config: { ...loaded.config, listen: previous.config.listen, backend: previous.config.backend } };
    this.#desired = desired;
    this.#o.metrics.generation.set(generation);
    this.#o.metrics.reloads.inc({ result: errors.length === 0 ? 'applied' : 'failed' });
    log.info({ generation, errors: errors.length }, 'config applied');
    const restart = needsRestart.length === 0 ? {} : { needsRestart };
    const at = new Date().toISOString();
    return (this.#lastReload = errors.length === 0 ? { kind: 'applied', at, reason, generation, ...restart } : { kind: 'applied-with-errors', at, reason, generation, errors, ...restart });
  }

  /** A candidate config refused whole: the last good one keeps serving. */
  #reject(log: Logger, reason: string, errors: readonly string[]): ReloadResult {
    log.error({ errors }, 'config rejected; the last good config keeps serving');
    this.#o.metrics.reloads.inc({ result: 'rejected' });
    return (this.#lastReload = { kind: 'rejected', at: new Date().toISOString(), reason, generation: this.#generation, errors });
  }

  /** A bug in a reload: logged and reported, never fatal. */
  #fail(reason: string, err: unknown): ReloadResult {
    this.#o.logger.error({ reason, err }, 'reload failed unexpectedly; the last good config keeps serving');
    this.#o.metrics.reloads.inc({ result: 'failed' });
    return (this.#lastReload = { kind: 'rejected', at: new Date().toISOString(), reason, generation: this.#generation, errors: [`internal error: ${(err as Error).message}`] });
  }

  #list(): Promise<readonly ObservedInstance[]> {
    return this.#o.backend.list(AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#o.listTimeoutMs ?? 30_000)]));
  }

  /** Backend events are hints: the unit they name is converged again, level-based. */
  async #followEvents(): Promise<void> {
    try {
      for await (const event of this.#o.backend.events(this.#closing.signal)) {
        const gone = event.kind === 'removed' || event.instance.state === 'exited';
        if (gone) this.#units.requeue([event.kind === 'removed' ? event.unit : event.instance.unit]);
      }
    } catch (err) {
      if (!this.#closing.signal.aborted) this.#o.logger.error({ err: (err as Error).message }, 'backend events ended; the periodic resync still repairs drift');
    }
  }
}

/** A running berth already has its file's path: a hint about passing one does not apply to a reload. */
function whileServing(issue: ConfigIssue): ConfigIssue {
  return issue.code === 'config_unreadable' ? { ...issue, hint: 'the last good config keeps serving; put the file back to apply it again' } : issue;
}

/**
 * The units the backend runs, as the planner sees them. Shared units come
 * from their instances (at the desired spec when any runs it); per-user units
 * have no instance until first use, so they count as running once converged.
 */
export function observedUnits(instances: readonly ObservedInstance[], desired: DesiredState, status: ReadonlyMap<string, UnitStatus>): ObservedUnit[] {
  const wanted = new Map<string, Unit>(desired.units.map((u) => [u.name, u]));
  const byUnit = new Map<string, ObservedInstance[]>();
  for (const i of instances) {
    // An exited instance of a wanted unit runs nothing: counted, a resync would keep a unit whose container stopped
    // behind berth's back. An unwanted unit's counts whatever its state, so that it is removed.
    if (i.userHash !== undefined || (i.state === 'exited' && wanted.has(i.unit))) continue;
    byUnit.set(i.unit, [...(byUnit.get(i.unit) ?? []), i]);
  }
  const out: ObservedUnit[] = [];
  for (const [name, list] of byUnit) {
    const hash = list.some((i) => i.specHash === wanted.get(name)?.specHash) ? wanted.get(name)?.specHash : list[0]?.specHash;
    out.push({ name, specHash: hash ?? '', replicas: list.filter((i) => i.specHash === hash).length });
  }
  for (const unit of desired.units) {
    if (unit.scope !== 'per-user' || status.get(unit.name)?.outcome.kind !== 'ok') continue;
    out.push({ name: unit.name, specHash: unit.specHash, replicas: unit.replicas });
  }
  return out;
}
