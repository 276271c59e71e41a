import { createInterface } from 'node:readline';
import type { Logger } from '../../observe/log.ts';
import type { Backend, EventStreamStatus, InstanceEvent, ObservedInstance, Placement, UpstreamTransport } from '../backend.ts';
import { backoffDelay, RECONNECT_BACKOFF } from '../../backoff.ts';
import { BackendError } from '../backend.ts';
import { freeLoopbackPort } from '../free-port.ts';
import { ANNOTATIONS, LABELS, ownerLabels } from '../labels.ts';
import { DEFAULT_MCP_PATH, workloadOf } from '../runtime.ts';
import type { ContainerInfo, ContainerInspectInfo, Daemon } from './daemon.ts';
import { daemonMessage } from './daemon.ts';
import { logLines, observeContainer } from './observe.ts';
import type { DockerSettings, Slot } from './spec.ts';
import { containerName, createOptions, isInternal, networkName, settingsHash, slotsOf } from './spec.ts';

export interface DockerBackendOptions {
  readonly daemon: Daemon;
  readonly settings: DockerSettings;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** Daemon event actions that change what `list` would say. */
const TWIN_ATTEMPTS = 20;
const TWIN_POLL_MS = 100;
const WATCHED = new Set(['create', 'start', 'die', 'oom', 'stop', 'kill', 'pause', 'unpause', 'restart', 'destroy']);

/**
 * Sibling containers through the Docker daemon. Everything berth needs to
 * know lives on the containers themselves (labels), so a restarted berth
 * lists, adopts and cleans up without a state file; containers outlive berth.
 */
export class DockerBackend implements Backend {
  readonly name = 'docker' as const;
  readonly #daemon: Daemon;
  readonly #settings: DockerSettings;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #history = new Map<string, { starts: number[] }>();
  /** Instances whose container could not be made (image missing): listed so status shows why; keyed by container name. */
  readonly #unmade = new Map<string, ObservedInstance>();
  readonly #closed = new AbortController();
  #network: Promise<void> | undefined;
  #events: EventStreamStatus = { state: 'watching', reconnects: 0, since: new Date().toISOString() };

  constructor(options: DockerBackendOptions) {
    this.#daemon = options.daemon;
    this.#settings = options.settings;
    this.#log = options.logger.child({ backend: 'docker' });
    this.#now = options.now ?? Date.now;
  }

  async list(signal: AbortSignal): Promise<readonly ObservedInstance[]> {
    const containers = await this.#daemon.listContainers([`${LABELS.owner}=${this.#settings.owner}`], signal);
    const observed = await this.#observeAll(containers, signal);
    return [...observed, ...this.#unmade.values()];
  }

  async ensure(placement: Placement, signal: AbortSignal): Promise<readonly ObservedInstance[]> {
    const unit = placement.unit;
    const userHash = placement.user?.hash;
    const settingsTag = settingsHash(this.#settings);
    await this.#ensureNetwork(signal);
    const found = await this.#daemon.listContainers([`${LABELS.owner}=${this.#settings.owner}`, `${LABELS.server}=${unit.name}`, `${LABELS.specHash}=${unit.specHash}`], signal);
    const mine = found.filter((c) => c.Labels[LABELS.user] === userHash);
    const slots = slotsOf(placement);
    const wanted = new Set(slots.map((s) => containerName(this.#settings.owner, unit, s)));
    // Surplus replicas, and containers made with other backend settings, go; other specHashes stay for the pool's hand-over.
    const stale = mine.filter((c) => !wanted.has(nameOf(c)) || c.Labels[LABELS.settings] !== settingsTag);
    await Promise.all(stale.map((c) => this.#daemon.remove(c.Id, signal)));
    const current = new Map(mine.filter((c) => !stale.includes(c)).map((c) => [nameOf(c), c]));
    const ids = await Promise.all(slots.map((slot) => this.#ensureSlot(placement, slot, current.get(containerName(this.#settings.owner, unit, slot)), signal)));
    const infos = await Promise.all(ids.map((id) => this.#daemon.inspect(id, signal)));
    return infos.filter((i) => i !== undefined).map((i) => this.#observe(i));
  }

  async remove(instanceId: string, signal: AbortSignal): Promise<void> {
    if (this.#unmade.delete(instanceId)) return;
    const info = await this.#owned(instanceId, signal);
    if (info === undefined) return;
    await this.#daemon.remove(info.Id, signal);
    this.#history.delete(info.Id);
  }

  async endpoint(instanceId: string, signal: AbortSignal): Promise<UpstreamTransport> {
    const info = await this.#owned(instanceId, signal);
    if (info === undefined) throw new BackendError('instance_not_found', `no container ${instanceId} of this berth`, { retryable: false });
    if (!info.State.Running) throw new BackendError('instance_not_found', `container ${nameOfInspect(info)} is not running (${info.State.Status})`, { retryable: true });
    const labels = info.Config.Labels ?? {};
    const port = labels[ANNOTATIONS.port] ?? '';
    const path = labels[ANNOTATIONS.path] ?? DEFAULT_MCP_PATH;
    const transport = labels[ANNOTATIONS.transport] === 'sse' ? 'sse' : 'streamable-http';
    return { kind: 'http', transport, url: `http://${this.#hostPortOf(info, port)}${path}`, headers: {} };
  }

  async logs(instanceId: string, tail: number, signal: AbortSignal): Promise<readonly string[]> {
    const info = await this.#owned(instanceId, signal);
    if (info === undefined) return [];
    return logLines(await this.#daemon.logs(info.Id, tail, signal));
  }

  eventStatus(): EventStreamStatus {
    return this.#events;
  }

  /**
   * The daemon's events, for as long as the signal lets: a stream that ends
   * or fails (the daemon restarted, its socket went) is subscribed again with
   * backoff, and then every container is reported as it is now, since
   * events in the gap are lost.
   */
  async *events(signal: AbortSignal): AsyncIterable<InstanceEvent> {
    const stop = AbortSignal.any([signal, this.#closed.signal]);
    let failures = 0;
    while (!stop.aborted) {
      let reason = 'the daemon ended the event stream';
      try {
        const stream = await this.#daemon.events([`${LABELS.owner}=${this.#settings.owner}`], stop);
        if (this.#events.state === 'reconnecting') {
          this.#setEvents('watching');
          this.#log.info({ reconnects: this.#events.reconnects }, 'docker events re-subscribed');
          failures = 0;
          for (const instance of await this.list(stop)) yield { kind: 'changed', instance };
        }
        yield* this.#read(stream, stop);
      } catch (err) {
        reason = (err as Error).message;
      }
      if (stop.aborted) return;
      const delay = backoffDelay(++failures, RECONNECT_BACKOFF);
      if (this.#events.state === 'watching') this.#setEvents('reconnecting', reason);
      this.#log[failures === 1 ? 'warn' : 'debug']({ reason, retryInMs: delay }, 'docker events lost; re-subscribing');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, delay);
        stop.addEventListener('abort', done, { once: true });
        function done(): void {
          clearTimeout(timer);
          stop.removeEventListener('abort', done);
          resolve();
        }
      });
    }
  }

  #setEvents(state: EventStreamStatus['state'], lastError?: string): void {
    const reconnects = this.#events.reconnects + (state === 'reconnecting' ? 1 : 0);
    const kept = lastError ?? this.#events.lastError;
    this.#events = { state, reconnects, since: new Date().toISOString(), ...(kept === undefined ? {} : { lastError: kept }) };
  }

  /** One subscription's events, until its stream ends or fails. */
  async *#read(stream: NodeJS.ReadableStream, stop: AbortSignal): AsyncIterable<InstanceEvent> {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    stop.addEventListener('abort', () => lines.close(), { once: true });
    try {
      for await (const line of lines) {
        const event = parseEvent(line);
        if (event === undefined || !WATCHED.has(event.action)) continue;
        if (event.action === 'destroy') {
          this.#history.delete(event.id);
          yield { kind: 'removed', id: event.id, unit: event.unit };
          continue;
        }
        const info = await this.#daemon.inspect(event.id, stop).catch(() => undefined);
        if (info === undefined) yield { kind: 'removed', id: event.id, unit: event.unit };
        else yield { kind: 'changed', instance: this.#observe(info) };
      }
    } finally {
      lines.close();
    }
  }

  /** Ends event streams; containers keep running, to be adopted by the next berth with this owner. */
  async close(): Promise<void> {
    this.#closed.abort();
  }

  async #ensureSlot(placement: Placement, slot: Slot, existing: ContainerInfo | undefined, signal: AbortSignal): Promise<string> {
    if (existing !== undefined) {
      // Running: adopted as is, no write. Exited or never started: started again.
      if (existing.State === 'running') return existing.Id;
      try {
        await this.#start(existing.Id, signal);
        return existing.Id;
      } catch (err) {
        // Listed a moment ago, gone now: the daemon rolled back a create whose request was aborted. Made anew below.
        if (!(err instanceof BackendError && err.code === 'instance_not_found')) throw err;
      }
    }
    const unit = placement.unit;
    const name = containerName(this.#settings.owner, unit, slot);
    try {
      await this.#ensureImage(workloadOf(unit.spec, this.#settings.runtimeImage).image, signal);
    } catch (err) {
      if (err instanceof BackendError && err.code === 'image_missing') this.#unmade.set(name, unmadeInstance(this.#settings.owner, placement, slot, name, err.message));
      throw err;
    }
    this.#unmade.delete(name);
    const port = this.#settings.networkMode === 'host' ? await freeLoopbackPort() : undefined;
    const options = createOptions(this.#settings, placement, slot, port);
    let id: string;
    try {
      id = await this.#daemon.create(options, signal);
    } catch (err) {
      // A concurrent ensure made it first: names are deterministic, so it is the same container.
      if (!(err instanceof BackendError) || !/already in use/.test(err.message)) throw err;
      const twin = await this.#twin(name, signal);
      if (twin === undefined) throw err;
      id = twin;
    }
    this.#log.info({ server: unit.name, container: name, replica: slot.replica }, 'container created');
    await this.#start(id, signal);
    return id;
  }

  /** The id of the container a concurrent create is making under this name; the daemon may take a moment to show it. */
  async #twin(name: string, signal: AbortSignal): Promise<string | undefined> {
    for (let attempt = 0; attempt < TWIN_ATTEMPTS; attempt++) {
      const info = await this.#daemon.inspect(name, signal);
      if (info !== undefined) return info.Id;
      await new Promise((resolve) => setTimeout(resolve, TWIN_POLL_MS).unref());
    }
    return undefined;
  }

  async #start(id: string, signal: AbortSignal): Promise<void> {
    const history = this.#history.get(id) ?? { starts: [] };
    history.starts.push(this.#now());
    this.#history.set(id, history);
    await this.#daemon.start(id, signal);
  }

  async #ensureImage(image: string, signal: AbortSignal): Promise<void> {
    const policy = this.#settings.pull;
    if (policy !== 'always' && (await this.#daemon.imageExists(image, signal))) return;
    if (policy === 'never') {
      throw new BackendError('image_missing', `image ${image} is not on the daemon and pull is never (build or load it, or set pull: if-not-present)`, { retryable: true });
    }
    this.#log.info({ image }, 'pulling image');
    try {
      await this.#daemon.pull(image, signal);
    } catch (err) {
      if (err instanceof BackendError && err.code !== 'image_missing') throw err;
      throw new BackendError('image_missing', `cannot pull image ${image}: ${daemonMessage(err)}`, { retryable: true, cause: err });
    }
  }

  /** One check (and at most one create) however many ensures run at once: concurrent creates make twin networks. */
  #ensureNetwork(signal: AbortSignal): Promise<void> {
    if (this.#settings.networkMode === 'host') return Promise.resolve();
    this.#network ??= this.#daemon.ensureNetwork(networkName(this.#settings), ownerLabels(this.#settings.owner), isInternal(this.#settings), signal).then(
      (created) => {
        if (created) this.#log.info({ network: this.#settings.network, internal: isInternal(this.#settings) }, 'network created');
      },
      (err: unknown) => {
        this.#network = undefined;
        throw err;
      },
    );
    return this.#network;
  }

  /** The container if it exists and belongs to this berth; another owner's is as good as absent. */
  async #owned(id: string, signal: AbortSignal): Promise<ContainerInspectInfo | undefined> {
    const info = await this.#daemon.inspect(id, signal);
    if (info === undefined || info.Config.Labels?.[LABELS.owner] !== this.#settings.owner) return undefined;
    return info;
  }

  async #observeAll(containers: readonly ContainerInfo[], signal: AbortSignal): Promise<ObservedInstance[]> {
    const infos = await Promise.all(containers.map((c) => this.#daemon.inspect(c.Id, signal)));
    return infos.filter((i) => i !== undefined).map((i) => this.#observe(i));
  }

  #observe(info: ContainerInspectInfo): ObservedInstance {
    return observeContainer(info, this.#history.get(info.Id), this.#now());
  }

  #hostPortOf(info: ContainerInspectInfo, port: string): string {
    switch (this.#settings.networkMode) {
      case 'host':
        return `127.0.0.1:${port}`;
      case 'shared':
        return `${nameOfInspect(info)}:${port}`;
      case 'published': {
        if (isInternal(this.#settings)) {
          const address = info.NetworkSettings.Networks?.[this.#settings.network]?.IPAddress;
          if (address === undefined || address === '') throw new BackendError('instance_not_found', `container ${nameOfInspect(info)} has no address on network ${this.#settings.network}`, { retryable: true });
          return `${address}:${port}`;
        }
        const bindings = info.NetworkSettings.Ports?.[`${port}/tcp`] ?? [];
        const binding = bindings.find((b) => b.HostIp === this.#settings.publishHost) ?? bindings[0];
        if (binding === undefined) throw new BackendError('instance_not_found', `container ${nameOfInspect(info)} publishes no port ${port}`, { retryable: true });
        const host = this.#settings.publishHost === '0.0.0.0' ? '127.0.0.1' : this.#settings.publishHost;
        return `${host.includes(':') ? `[${host}]` : host}:${binding.HostPort}`;
      }
    }
  }
}

function nameOf(c: ContainerInfo): string {
  return (c.Names[0] ?? '').replace(/^\//, '');
}

function nameOfInspect(info: ContainerInspectInfo): string {
  return info.Name.replace(/^\//, '');
}

function unmadeInstance(owner: string, placement: Placement, slot: Slot, name: string, message: string): ObservedInstance {
  return {
    id: name,
    owner,
    unit: placement.unit.name,
    specHash: placement.unit.specHash,
    replica: slot.replica,
    state: 'failed',
    restarts: 0,
    failure: 'image-missing',
    lastError: message,
    detail: name,
    ...(slot.userHash === undefined ? {} : { userHash: slot.userHash }),
  };
}

function parseEvent(line: string): { action: string; id: string; unit: string } | undefined {
  try {
    const event = JSON.parse(line) as { Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    // Exec events read "exec_start: sh -c …"; only the verb matters.
    const action = (event.Action ?? '').split(':')[0] ?? '';
    const id = event.Actor?.ID;
    if (id === undefined) return undefined;
    return { action, id, unit: event.Actor?.Attributes?.[LABELS.server] ?? '' };
  } catch {
    return undefined;
  }
}
