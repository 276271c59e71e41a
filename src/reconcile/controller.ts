import { lstatSync, realpathSync } from 'node:fs';
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
import { buildRouteTable, EMPTY_TABLE, retireHandlers } from '../proxy/table.ts';
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
    return this.#serially(() => this.#reload(reason));
  }

  /** Runs reloads and resyncs one at a time, in the order asked. */
  #serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
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
      return this.#reject(log, reason, issues.length > 0 ? issues.map(formatIssue) : [(err as Error).message]);
    }
    const backendType = loaded.config.backend?.type ?? 'local';
    if (backendType !== this.#o.backend.name) {
      return this.#reject(log, reason, [`${this.#o.file}: backend ${backendType} differs from the running backend ${this.#o.backend.name}; changing backends needs a restart`]);
    }
    const desired = resolveDesiredState(loaded);
    const previousDesired = this.#desired;
    const generation = ++this.#generation;
    const previousTable = this.#table;
    this.#table = buildRouteTable(desired, previousTable, generation, { ...this.#o.tableDeps, backend: this.#o.backend });
    await retireHandlers(previousTable, this.#table);
    // Sessions of removed servers stay open until their unit drained: answers in flight still reach them.
    this.#loaded = loaded;
    this.#desired = desired;
    this.#o.metrics.generation.set(generation);

    const plan = planChanges(desired, { units: await this.#o.backend.list(), routes: previousDesired?.routes ?? [] });
    if (hasChanges(plan)) log.info({ actions: plan.actions.filter((a) => a.kind !== 'keep').map((a) => `${a.kind} ${a.unit.name}`) }, 'applying plan');
    this.#outcomes = new Map(await applyPlan(plan, { backend: this.#o.backend, logger: log }));
    const errors = [...this.#outcomes].flatMap(([unit, o]) => (o.kind === 'failed' ? [`${unit}: ${o.reason}`] : []));
    this.#o.metrics.reloads.inc({ result: errors.length === 0 ? 'applied' : 'failed' });
    log.info({ generation, errors: errors.length }, 'config applied');
    return (this.#lastReload = { ok: errors.length === 0, at: new Date().toISOString(), reason, generation, errors });
  }

  /** A candidate config refused whole: the last good one keeps serving. */
  #reject(log: Logger, reason: string, errors: readonly string[]): ReloadResult {
    log.error({ errors }, 'config rejected; the last good config keeps serving');
    this.#o.metrics.reloads.inc({ result: 'rejected' });
    return (this.#lastReload = { ok: false, at: new Date().toISOString(), reason, generation: this.#generation, errors });
  }

  /**
   * Watches the config's directory, not the file: editors that save by
   * rename, git-sync's symlink swap and Kubernetes ConfigMap updates all
   * replace the file, which a watch on the file itself would lose. Every
   * symlinked ancestor is watched in its parent too, and the watch is re-armed
   * when a swap moved the directory the config really lives in.
   */
  watch(): void {
    this.#armWatch();
    const resyncMs = this.#o.resyncMs ?? 60_000;
    this.#resync = setInterval(() => void this.resync(), resyncMs).unref();
  }

  #armWatch(): void {
    const targets = watchTargets(path.resolve(this.#o.file));
    const armedIn = realDir(this.#o.file);
    const watcher = watch([...targets.keys()], { depth: 0, ignoreInitial: true, followSymlinks: false });
    const schedule = (changed: string): void => {
      const names = targets.get(path.dirname(changed));
      const name = path.basename(changed);
      if (this.#closed || names === undefined || !names.some((n) => (n === '..*' ? name.startsWith('..') : n === name))) return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => {
        void this.reload('file changed').then(() => {
          if (realDir(this.#o.file) === armedIn || this.#closed || this.#watcher !== watcher) return;
          void watcher.close();
          this.#armWatch();
        });
      }, this.#o.debounceMs ?? 200).unref();
    };
    watcher.on('add', schedule).on('change', schedule).on('unlink', schedule).on('addDir', schedule).on('unlinkDir', schedule);
    watcher.on('error', (err) => this.#o.logger.warn({ err: (err as Error).message }, 'config watch error; still watching'));
    this.#watcher = watcher;
  }

  /** Re-plans against what the backend reports and repairs drift, without re-reading the file. */
  resync(): Promise<void> {
    return this.#serially(async () => {
      const desired = this.#desired;
      if (desired === undefined || this.#closed) return;
      const plan = planChanges(desired, { units: await this.#o.backend.list(), routes: desired.routes });
      if (!hasChanges(plan)) return;
      this.#o.logger.info('resync found drift; converging');
      this.#outcomes = new Map(await applyPlan(plan, { backend: this.#o.backend, logger: this.#o.logger }));
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#resync);
    await this.#watcher?.close();
    await this.#queue;
    for (const handler of this.#table.handlers.values()) handler.close();
  }
}

/**
 * Directories to watch, each with the entry names that matter there: the
 * config file and ConfigMap `..` entries in its directory, and every
 * symlinked ancestor directory (git-sync's `repo` link) in its parent.
 */
function watchTargets(file: string): Map<string, string[]> {
  const targets = new Map<string, string[]>([[path.dirname(file), [path.basename(file), '..*']]]);
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (isSymlink(dir)) targets.set(path.dirname(dir), [...(targets.get(path.dirname(dir)) ?? []), path.basename(dir)]);
  }
  return targets;
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function realDir(file: string): string | undefined {
  try {
    return realpathSync(path.dirname(path.resolve(file)));
  } catch {
    return undefined;
  }
}
