import path from 'node:path';
import type { Unit } from '../../desired/types.ts';
import type { Logger } from '../../observe/log.ts';
import { Multiplexer } from '../../proxy/multiplex.ts';
import type { ObservedUnit } from '../../reconcile/plan.ts';
import type { Backend, Endpoint, InstanceState, InstanceStatus } from '../backend.ts';
import { stdioChannel } from './channel.ts';
import { StdioChild } from './child.ts';
import { commandFor } from './command.ts';

const DRAIN_POLL_MS = 50;

interface Instance {
  readonly child: StdioChild;
  readonly mux: Multiplexer;
  readonly user?: string;
  lastUsed: number;
}

interface Entry {
  unit: Unit;
  shared: Instance[];
  readonly perUser: Map<string, Instance>;
  /** Per-user instances being started, so concurrent first requests share one. */
  readonly starting: Map<string, Promise<Instance>>;
}

export interface LocalBackendOptions {
  readonly logger: Logger;
  /** Directory relative `cwd`s resolve against: the config file's. */
  readonly baseDir: string;
  /** Per-unit idle timeout of per-user instances; read at every sweep so reloads apply. */
  readonly idleTimeoutFor?: (unit: string) => number | undefined;
  readonly sweepIntervalMs?: number;
  /** How long a removed unit may finish requests in flight before it is stopped. */
  readonly drainMs?: number;
  readonly now?: () => number;
}

/**
 * The embedded backend: every instance is a child process on this host,
 * speaking MCP on stdio, multiplexed to any number of client sessions.
 */
export class LocalBackend implements Backend {
  readonly name = 'local' as const;
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger;
  readonly #baseDir: string;
  readonly #idleTimeoutFor: (unit: string) => number | undefined;
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #drainMs: number;

  constructor(options: LocalBackendOptions) {
    this.#log = options.logger;
    this.#baseDir = options.baseDir;
    this.#idleTimeoutFor = options.idleTimeoutFor ?? (() => undefined);
    this.#now = options.now ?? Date.now;
    this.#drainMs = options.drainMs ?? 10_000;
    this.#sweeper = setInterval(() => void this.sweepIdle(), options.sweepIntervalMs ?? 5_000).unref();
  }

  async list(): Promise<ObservedUnit[]> {
    return [...this.#entries.values()].map((e) => ({ name: e.unit.name, specHash: e.unit.specHash, replicas: e.shared.length, spec: e.unit.spec }));
  }

  async ensure(unit: Unit, signal?: AbortSignal): Promise<void> {
    const current = this.#entries.get(unit.name);
    if (current !== undefined && current.unit.specHash === unit.specHash) {
      current.unit = unit;
      await this.#scale(current, signal);
      return;
    }
    const next: Entry = { unit, shared: [], perUser: new Map(), starting: new Map() };
    if (current === undefined) {
      // Nothing to fall back to: the unit exists from now on, ready or still
      // retrying, and status shows which.
      this.#entries.set(unit.name, next);
      await this.#scale(next, signal);
      return;
    }
    // Start the replacement beside the old one; swap only once it is ready,
    // then move the old instances' sessions over so their clients stay connected.
    try {
      await this.#scale(next, signal);
    } catch (err) {
      await this.#stopEntry(next);
      throw err;
    }
    this.#entries.set(unit.name, next);
    current.shared.forEach((old, i) => {
      const heir = next.shared[i % Math.max(1, next.shared.length)];
      if (heir !== undefined) old.mux.handOver(heir.mux);
    });
    await this.#stopEntry(current);
  }

  /** Stops a unit once its requests in flight are answered, or after the drain timeout. */
  async remove(name: string, signal?: AbortSignal): Promise<void> {
    const entry = this.#entries.get(name);
    if (entry === undefined) return;
    this.#entries.delete(name);
    const instances = [...entry.shared, ...entry.perUser.values()];
    const deadline = this.#now() + this.#drainMs;
    while (instances.some((i) => i.mux.pendingCount > 0) && this.#now() < deadline && signal?.aborted !== true) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS).unref());
    }
    await this.#stopEntry(entry);
  }

  async endpoint(name: string, user: string, signal?: AbortSignal): Promise<Endpoint> {
    const entry = this.#entries.get(name);
    if (entry === undefined) throw new Error(`server ${name} is not running`);
    const unit = entry.unit;
    if (unit.scope === 'shared') {
      // The least busy replica takes the new session.
      const instance = entry.shared.reduce<Instance | undefined>((best, i) => (best === undefined || i.mux.sessionCount < best.mux.sessionCount ? i : best), undefined);
      if (instance === undefined) throw new Error(`server ${unit.name} has no instance`);
      instance.lastUsed = this.#now();
      return { kind: 'mcp', mux: instance.mux };
    }
    const existing = entry.perUser.get(user);
    if (existing !== undefined) {
      existing.lastUsed = this.#now();
      return { kind: 'mcp', mux: existing.mux };
    }
    let starting = entry.starting.get(user);
    if (starting === undefined) {
      starting = this.#startAndWait(entry.unit, user, signal).finally(() => entry.starting.delete(user));
      entry.starting.set(user, starting);
    }
    const instance = await starting;
    if (this.#entries.get(unit.name) !== entry) {
      await this.#stopInstance(instance);
      throw new Error(`server ${unit.name} changed while starting`);
    }
    entry.perUser.set(user, instance);
    return { kind: 'mcp', mux: instance.mux };
  }

  logs(name: string): readonly string[] {
    const entry = this.#entries.get(name);
    if (entry === undefined) return [];
    return [...entry.shared, ...entry.perUser.values()].flatMap((i) => i.child.status().stderrTail);
  }

  status(): readonly InstanceStatus[] {
    const out: InstanceStatus[] = [];
    for (const entry of this.#entries.values()) {
      for (const instance of [...entry.shared, ...entry.perUser.values()]) out.push(this.#statusOf(entry.unit.name, instance));
    }
    return out;
  }

  /** Stops per-user instances unused for longer than their server's idle timeout. */
  async sweepIdle(): Promise<void> {
    const now = this.#now();
    for (const entry of this.#entries.values()) {
      const timeout = this.#idleTimeoutFor(entry.unit.name);
      if (timeout === undefined) continue;
      for (const [user, instance] of entry.perUser) {
        const last = Math.max(instance.lastUsed, instance.mux.lastActivity());
        if (now - last < timeout) continue;
        entry.perUser.delete(user);
        this.#log.info({ server: entry.unit.name, user }, 'stopping idle instance');
        await this.#stopInstance(instance);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((e) => this.#stopEntry(e)));
  }

  async #scale(entry: Entry, signal?: AbortSignal): Promise<void> {
    if (entry.unit.scope !== 'shared') return;
    while (entry.shared.length > entry.unit.replicas) {
      const surplus = entry.shared.pop();
      if (surplus !== undefined) await this.#stopInstance(surplus);
    }
    const started: Instance[] = [];
    while (entry.shared.length + started.length < entry.unit.replicas) started.push(this.#startInstance(entry.unit));
    entry.shared.push(...started);
    await Promise.all(started.map((i) => this.#waitReady(entry.unit, i, signal)));
  }

  async #startAndWait(unit: Unit, user: string, signal?: AbortSignal): Promise<Instance> {
    const instance = this.#startInstance(unit, user);
    try {
      await this.#waitReady(unit, instance, signal);
    } catch (err) {
      await this.#stopInstance(instance);
      throw err;
    }
    return instance;
  }

  #startInstance(unit: Unit, user?: string): Instance {
    const spec = unit.spec;
    // Throws for runtime container, which this backend cannot run.
    const { command, args, cwd } = commandFor(spec);
    const id = user === undefined ? unit.name : `${unit.name}/${user}`;
    const child = new StdioChild({ id, command, args, env: { ...spec.env.values }, cwd: path.resolve(this.#baseDir, cwd ?? '.'), logger: this.#log });
    const mux = new Multiplexer({ name: id, channel: stdioChannel(child), logger: this.#log, now: this.#now });
    child.start();
    return { child, mux, lastUsed: this.#now(), ...(user === undefined ? {} : { user }) };
  }

  /**
   * Resolves once the instance answered `initialize`; rejects after the
   * unit's startup timeout, or as soon as it crash-loops: waiting longer for
   * a process that keeps dying would only delay the report.
   */
  async #waitReady(unit: Unit, instance: Instance, signal?: AbortSignal): Promise<void> {
    const crashLoop = new AbortController();
    const onExit = (): void => {
      if (instance.child.status().state === 'crash-looping') crashLoop.abort(new Error('crash-looping'));
    };
    instance.child.on('exit', onExit);
    const stops = [AbortSignal.timeout(unit.startupTimeoutMs), crashLoop.signal, ...(signal === undefined ? [] : [signal])];
    try {
      await instance.mux.ready(AbortSignal.any(stops));
    } catch (err) {
      const status = instance.child.status();
      throw new Error(`server ${unit.name} did not become ready: ${status.lastError ?? (err as Error).message}`, { cause: err });
    } finally {
      instance.child.off('exit', onExit);
    }
  }

  async #stopEntry(entry: Entry): Promise<void> {
    const instances = [...entry.shared, ...entry.perUser.values()];
    entry.shared = [];
    entry.perUser.clear();
    await Promise.all(instances.map((i) => this.#stopInstance(i)));
  }

  async #stopInstance(instance: Instance): Promise<void> {
    instance.mux.close();
    await instance.child.stop();
  }

  #statusOf(unit: string, instance: Instance): InstanceStatus {
    const s = instance.child.status();
    const state: InstanceState = s.state === 'running' ? (instance.mux.info === undefined ? 'starting' : 'ready') : s.state;
    return {
      unit,
      state,
      restarts: s.restarts,
      sessions: instance.mux.sessionCount,
      ...(instance.user === undefined ? {} : { user: instance.user }),
      ...(s.lastError === undefined ? {} : { lastError: s.lastError }),
      ...(s.pid === undefined ? {} : { pid: s.pid }),
      ...(s.startedAt === undefined ? {} : { startedAt: new Date(s.startedAt).toISOString() }),
    };
  }
}
