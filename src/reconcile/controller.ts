import path from 'node:path';
import { watch } from 'chokidar';
import type { FSWatcher } from 'chokidar';
import type { Backend } from '../backends/backend.ts';
import type { LoadedConfig } from '../config/load.ts';
import { loadConfigFile } from '../config/load.ts';
import type { ConfigIssue } from '../config/issues.ts';
import { ConfigError, formatIssue } from '../config/issues.ts';
import { resolveDesiredState } from '../desired/resolve.ts';
import type { DesiredState } from '../desired/types.ts';
import type { Logger } from '../observe/log.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { RouteTable, TableDeps } from '../proxy/table.ts';
import { buildRouteTable, EMPTY_TABLE, retiredHandlers } from '../proxy/table.ts';
import type { Outcome } from './apply.ts';
import { applyPlan } from './apply.ts';
import { hasChanges, planChanges } from './plan.ts';

export interface ReloadResult {
  readonly ok: boolean;
  readonly at: string;
  readonly reason: string;
  readonly generation: number;
  readonly errors: readonly string[];
}

export interface ControllerOptions {
  readonly file: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly backend: Backend;
  readonly tableDeps: Omit<TableDeps, 'backend'>;
  /** Debounce of file events; editors and git write in bursts. */
  readonly debounceMs?: number;
  /** Period of the level-based resync that repairs drift. */
  readonly resyncMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Owns the serving config: load → validate → resolve → swap routes → plan →
 * apply, on start, on file change, on SIGHUP and periodically. A candidate
 * that fails validation is rejected whole; the last good one keeps serving.
 */
export class Controller {
  readonly #o: ControllerOptions;
  #loaded: LoadedConfig | undefined;
  #desired: DesiredState | undefined;
  #table: RouteTable = EMPTY_TABLE;
  #generation = 0;
  #lastReload: ReloadResult | undefined;
  #outcomes = new Map<string, Outcome>();
  #queue: Promise<unknown> = Promise.resolve();
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #resync: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ControllerOptions) {
    this.#o = options;
  }

  get table(): RouteTable {
    return this.#table;
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

  /** Failed convergence per unit, from the last apply. */
  get outcomes(): ReadonlyMap<string, Outcome> {
    return this.#outcomes;
  }

  /** Reloads serially: a reload requested during another runs after it, against the file as it is then. */
  reload(reason: string): Promise<ReloadResult> {
    const run = this.#queue.then(() => this.#reload(reason));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #reload(reason: string): Promise<ReloadResult> {
    const log = this.#o.logger.child({ reloadId: this.#generation + 1, reason });
    let loaded: LoadedConfig;
    try {
      loaded = loadConfigFile(this.#o.file, this.#o.env);
    } catch (err) {
      const issues: readonly ConfigIssue[] = err instanceof ConfigError ? err.issues : [];
      const errors = issues.length > 0 ? issues.map(formatIssue) : [(err as Error).message];
      log.error({ errors }, 'config rejected; the last good config keeps serving');
      this.#o.metrics.reloads.inc({ result: 'rejected' });
      return (this.#lastReload = { ok: false, at: new Date().toISOString(), reason, generation: this.#generation, errors });
    }
    const backendType = loaded.config.backend?.type ?? 'local';
    if (backendType !== this.#o.backend.name) {
      const errors = [`${this.#o.file}: backend ${backendType} differs from the running backend ${this.#o.backend.name}; changing backends needs a restart`];
      log.error({ errors }, 'config rejected; the last good config keeps serving');
      this.#o.metrics.reloads.inc({ result: 'rejected' });
      return (this.#lastReload = { ok: false, at: new Date().toISOString(), reason, generation: this.#generation, errors });
    }
    const desired = resolveDesiredState(loaded);
    const previousDesired = this.#desired;
    const generation = ++this.#generation;
    const previousTable = this.#table;
    this.#table = buildRouteTable(desired, previousTable, generation, { ...this.#o.tableDeps, backend: this.#o.backend });
    for (const handler of retiredHandlers(previousTable, this.#table)) handler.close();
    // Sessions of removed servers stay open until their unit drained: answers in flight still reach them.
    this.#loaded = loaded;
    this.#desired = desired;
    this.#o.metrics.generation.set(generation);

    const plan = planChanges(desired, { units: await this.#o.backend.list(), routes: previousDesired?.routes ?? [] });
    if (hasChanges(plan)) log.info({ actions: plan.actions.filter((a) => a.kind !== 'keep').map((a) => `${a.kind} ${a.unit.name}`) }, 'applying plan');
    this.#outcomes = new Map(await applyPlan(plan, { backend: this.#o.backend, logger: log }));
    const errors = [...this.#outcomes].filter(([, o]) => o.kind === 'failed').map(([unit, o]) => `${unit}: ${o.kind === 'failed' ? o.reason : ''}`);
    this.#o.metrics.reloads.inc({ result: errors.length === 0 ? 'applied' : 'failed' });
    log.info({ generation, errors: errors.length }, 'config applied');
    return (this.#lastReload = { ok: errors.length === 0, at: new Date().toISOString(), reason, generation, errors });
  }

  /**
   * Watches the config's directory, not the file: editors that save by
   * rename, git-sync's symlink swap and Kubernetes ConfigMap updates all
   * replace the file, which a watch on the file itself would lose.
   */
  watch(): void {
    const file = path.resolve(this.#o.file);
    const dir = path.dirname(file);
    const base = path.basename(file);
    this.#watcher = watch(dir, { depth: 0, ignoreInitial: true, followSymlinks: true, awaitWriteFinish: false });
    const relevant = (changed: string): boolean => {
      const name = path.basename(changed);
      // ConfigMap mounts swap a `..data` symlink; the file itself never changes name.
      return name === base || name.startsWith('..');
    };
    const schedule = (changed: string): void => {
      if (!relevant(changed) || this.#closed) return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => void this.reload('file changed'), this.#o.debounceMs ?? 200).unref();
    };
    this.#watcher.on('add', schedule).on('change', schedule).on('unlink', schedule).on('addDir', schedule).on('unlinkDir', schedule);
    this.#watcher.on('error', (err) => this.#o.logger.warn({ err: (err as Error).message }, 'config watch error; still watching'));
    const resyncMs = this.#o.resyncMs ?? 60_000;
    this.#resync = setInterval(() => void this.resync(), resyncMs).unref();
  }

  /** Re-plans against what the backend reports and repairs drift, without re-reading the file. */
  resync(): Promise<void> {
    const run = this.#queue.then(async () => {
      const desired = this.#desired;
      if (desired === undefined || this.#closed) return;
      const plan = planChanges(desired, { units: await this.#o.backend.list(), routes: desired.routes });
      if (!hasChanges(plan)) return;
      this.#o.logger.info('resync found drift; converging');
      this.#outcomes = new Map(await applyPlan(plan, { backend: this.#o.backend, logger: this.#o.logger }));
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#resync);
    await this.#watcher?.close();
    await this.#queue;
  }
}
