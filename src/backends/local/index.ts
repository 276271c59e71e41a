import { EventEmitter, on } from 'node:events';
import path from 'node:path';
import type { Unit } from '../../desired/types.ts';
import type { Logger } from '../../observe/log.ts';
import type { Backend, InstanceEvent, InstanceState, ObservedInstance, Placement, UpstreamTransport } from '../backend.ts';
import { BackendError } from '../backend.ts';
import { freeLoopbackPort } from '../free-port.ts';
import { commandFor, httpCommandOf } from '../runtime.ts';
import { stdioChannel } from './channel.ts';
import type { ChildState } from './child.ts';
import { StdioChild } from './child.ts';

interface Instance {
  readonly id: string;
  readonly unit: string;
  readonly specHash: string;
  readonly replica: number;
  readonly userHash?: string;
  readonly child: StdioChild;
  readonly transport: UpstreamTransport;
}

export interface LocalBackendOptions {
  readonly logger: Logger;
  /** Directory relative `cwd`s resolve against: the config file's. */
  readonly baseDir: string;
  /** Names this berth on its instances; local instances die with berth, so it only labels status. */
  readonly owner?: string;
  /** Restart delays of crashed children. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** The longest stdout line (one message) taken from a stdio server: listen.maxAnswerBytes, as for HTTP servers. Default 10 MiB. */
  readonly maxLineBytes?: number;
}

const STATE: Readonly<Record<ChildState, InstanceState>> = {
  starting: 'creating',
  running: 'running',
  backoff: 'backoff',
  'crash-looping': 'crash-looping',
  stopping: 'stopping',
  stopped: 'exited',
};

/**
 * The embedded backend: every instance is a supervised child process on this
 * host. It starts, restarts and stops processes and says how to reach them;
 * what speaks MCP to them is the proxy's upstream pool.
 */
export class LocalBackend implements Backend {
  readonly name = 'local' as const;
  readonly #instances = new Map<string, Instance>();
  readonly #events = new EventEmitter<{ event: [InstanceEvent] }>();
  readonly #log: Logger;
  readonly #baseDir: string;
  readonly #owner: string;
  readonly #backoff: LocalBackendOptions['backoff'];
  readonly #maxLineBytes: number | undefined;
  readonly #closed = new AbortController();
  #writes = 0;

  constructor(options: LocalBackendOptions) {
    this.#log = options.logger;
    this.#baseDir = options.baseDir;
    this.#owner = options.owner ?? 'berth';
    this.#backoff = options.backoff;
    this.#maxLineBytes = options.maxLineBytes;
    // Consumers come and go (reloads, tests); a listener count warning would be noise.
    this.#events.setMaxListeners(0);
  }

  /** Processes started and stopped since this backend was made: what an idempotent ensure must not add to. */
  get writes(): number {
    return this.#writes;
  }

  async list(): Promise<readonly ObservedInstance[]> {
    return [...this.#instances.values()].map((i) => this.#observe(i));
  }

  async ensure(placement: Placement, signal: AbortSignal): Promise<readonly ObservedInstance[]> {
    const { unit, user } = placement;
    const wanted = unit.scope === 'shared' ? unit.replicas : 1;
    const mine = (i: Instance): boolean => i.unit === unit.name && i.specHash === unit.specHash && i.userHash === user?.hash;
    for (const surplus of [...this.#instances.values()].filter((i) => mine(i) && i.replica >= wanted)) await this.remove(surplus.id);
    for (let replica = 0; replica < wanted; replica++) {
      if (signal.aborted) throw new BackendError('aborted', `ensuring ${unit.name} was cancelled`, { retryable: true });
      const id = instanceId(unit, replica, user?.hash);
      if (!this.#instances.has(id)) await this.#start(id, unit, replica, placement);
    }
    return [...this.#instances.values()].filter(mine).map((i) => this.#observe(i));
  }

  async remove(instanceId: string): Promise<void> {
    const instance = this.#instances.get(instanceId);
    if (instance === undefined) return;
    this.#instances.delete(instanceId);
    this.#writes++;
    await instance.child.stop();
    this.#events.emit('event', { kind: 'removed', id: instanceId, unit: instance.unit });
  }

  async endpoint(instanceId: string): Promise<UpstreamTransport> {
    return this.#get(instanceId).transport;
  }

  async logs(instanceId: string, tail: number): Promise<readonly string[]> {
    return this.#get(instanceId).child.status().stderrTail.slice(-tail);
  }

  async *events(signal: AbortSignal): AsyncIterable<InstanceEvent> {
    const stop = AbortSignal.any([signal, this.#closed.signal]);
    try {
      for await (const [event] of on(this.#events, 'event', { signal: stop })) yield event as InstanceEvent;
    } catch (err) {
      if (!stop.aborted) throw err;
    }
  }

  /** Children cannot outlive berth: they are stopped here, and event streams end. */
  async close(): Promise<void> {
    this.#closed.abort();
    const instances = [...this.#instances.values()];
    this.#instances.clear();
    await Promise.all(instances.map((i) => i.child.stop()));
  }

  async #start(id: string, unit: Unit, replica: number, placement: Placement): Promise<void> {
    const spec = unit.spec;
    const command = commandFor(spec);
    const served = httpCommandOf(spec);
    const http = served === undefined ? undefined : { ...served, port: await freeLoopbackPort() };
    const env = { ...spec.env.values, ...placement.user?.env, ...(http === undefined ? {} : { PORT: String(http.port) }) };
    const child = new StdioChild({
      id: placement.user === undefined ? unit.name : `${unit.name}/${placement.user.hash}`,
      command: command.command,
      args: command.args,
      env,
      cwd: path.resolve(this.#baseDir, command.cwd ?? '.'),
      logger: this.#log,
      stdoutMessages: http === undefined,
      ...(this.#backoff === undefined ? {} : { backoff: this.#backoff }),
      ...(this.#maxLineBytes === undefined ? {} : { maxLineBytes: this.#maxLineBytes }),
    });
    const transport: UpstreamTransport =
      http === undefined ? { kind: 'stdio', channel: stdioChannel(child) } : { kind: 'http', transport: http.transport, url: `http://127.0.0.1:${http.port}${http.path}`, headers: {} };
    const instance: Instance = { id, unit: unit.name, specHash: unit.specHash, replica, child, transport, ...(placement.user === undefined ? {} : { userHash: placement.user.hash }) };
    this.#instances.set(id, instance);
    this.#writes++;
    const changed = (): void => {
      if (this.#instances.get(id) === instance) this.#events.emit('event', { kind: 'changed', instance: this.#observe(instance) });
    };
    child.on('spawn', changed);
    child.on('exit', changed);
    child.start();
  }

  #get(instanceId: string): Instance {
    const instance = this.#instances.get(instanceId);
    if (instance === undefined) throw new BackendError('instance_not_found', `no local instance ${instanceId}`, { retryable: false });
    return instance;
  }

  #observe(instance: Instance): ObservedInstance {
    const s = instance.child.status();
    const state = STATE[s.state];
    const failing = state === 'backoff' || state === 'crash-looping';
    return {
      id: instance.id,
      owner: this.#owner,
      unit: instance.unit,
      specHash: instance.specHash,
      replica: instance.replica,
      state,
      restarts: s.restarts,
      ...(instance.userHash === undefined ? {} : { userHash: instance.userHash }),
      ...(failing ? { failure: state === 'crash-looping' ? 'crash-loop' : 'exited' } : {}),
      ...(s.lastError === undefined ? {} : { lastError: s.lastError }),
      ...(s.startedAt === undefined ? {} : { startedAt: new Date(s.startedAt).toISOString() }),
      ...(s.pid === undefined ? {} : { detail: `pid ${s.pid}` }),
    };
  }
}

/** Deterministic per (unit, spec, replica, user): ensuring twice finds the same instance. */
function instanceId(unit: Unit, replica: number, userHash: string | undefined): string {
  return userHash === undefined ? `${unit.name}@${unit.specHash}#${replica}` : `${unit.name}@${unit.specHash}~${userHash}`;
}
