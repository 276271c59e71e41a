// The one place berth talks to the Docker daemon. Every call takes a signal,
// every failure becomes a BackendError, and every call that changes something
// is counted, so "an unchanged config makes no daemon writes" can be checked.
import Docker from 'dockerode';
import type { ContainerCreateOptions, ContainerInfo, ContainerInspectInfo } from 'dockerode';
import { BackendError } from '../backend.ts';

export type { ContainerCreateOptions, ContainerInfo, ContainerInspectInfo };

export interface DaemonOptions {
  /** Path of the daemon's unix socket; default /var/run/docker.sock. */
  readonly socketPath?: string;
}

/** A daemon error as dockerode reports it. */
interface DockerApiError {
  readonly statusCode?: number;
  readonly json?: { readonly message?: string } | null;
  readonly code?: string;
  readonly name?: string;
  readonly message?: string;
}

const STOP_GRACE_SECONDS = 5;

export class Daemon {
  readonly #docker: Docker;
  #writes = 0;

  constructor(options: DaemonOptions = {}) {
    this.#docker = new Docker({ socketPath: options.socketPath ?? '/var/run/docker.sock' });
  }

  /** Calls that changed something on the daemon since this object was made. */
  get writes(): number {
    return this.#writes;
  }

  async ping(signal: AbortSignal): Promise<void> {
    // dockerode takes the signal here too; its types do not say so.
    const ping = this.#docker.ping.bind(this.#docker) as (options: { abortSignal: AbortSignal }) => Promise<unknown>;
    await this.#call('reach the Docker daemon', signal, () => ping({ abortSignal: signal }));
  }

  /** Containers (running or not) carrying every one of these `key=value` labels. */
  listContainers(labels: readonly string[], signal: AbortSignal): Promise<ContainerInfo[]> {
    return this.#call('list containers', signal, () => this.#docker.listContainers({ all: true, filters: { label: [...labels] }, abortSignal: signal }));
  }

  /** The container's full state; undefined when it does not exist. */
  inspect(id: string, signal: AbortSignal): Promise<ContainerInspectInfo | undefined> {
    return this.#call('inspect a container', signal, () => this.#docker.getContainer(id).inspect({ abortSignal: signal }), { 404: undefined });
  }

  async create(options: ContainerCreateOptions, signal: AbortSignal): Promise<string> {
    this.#writes++;
    const container = await this.#call('create a container', signal, () => this.#docker.createContainer({ ...options, abortSignal: signal }));
    return container.id;
  }

  async start(id: string, signal: AbortSignal): Promise<void> {
    this.#writes++;
    await this.#call('start a container', signal, () => this.#docker.getContainer(id).start({ abortSignal: signal }), { 304: undefined });
  }

  /** Stops (SIGTERM, then SIGKILL after a grace) and deletes a container; gone already is fine. */
  async remove(id: string, signal: AbortSignal): Promise<void> {
    this.#writes++;
    const container = this.#docker.getContainer(id);
    await this.#call('stop a container', signal, () => container.stop({ t: STOP_GRACE_SECONDS, abortSignal: signal }), { 304: undefined, 404: undefined });
    await this.#call('remove a container', signal, () => container.remove({ force: true, v: true, abortSignal: signal }), { 404: undefined, 409: undefined });
  }

  /** Creates the network unless one of that name exists; true when it created it. */
  /**
   * Creates the bridge network unless it exists; true when created. An
   * existing one must be `internal` as asked: one that is not would let the
   * servers reach everywhere, and Docker cannot change that on a network.
   */
  async ensureNetwork(name: string, labels: Readonly<Record<string, string>>, internal: boolean, signal: AbortSignal): Promise<boolean> {
    const found = await this.#call('list networks', signal, () => this.#docker.listNetworks({ filters: { name: [name] }, abortSignal: signal }));
    // The name filter matches substrings.
    const existing = found.find((n) => n.Name === name);
    if (existing !== undefined) {
      if (existing.Internal !== internal) {
        const remedy = internal ? 'remove it (docker network rm) or give berth another `backend.network`, so berth makes it internal; or declare `backend.pods.egress: [0.0.0.0/0, "::/0"]`' : 'remove it (docker network rm) or give berth another `backend.network`; or declare no `backend.pods.egress`';
        throw new BackendError('network_mismatch', `network ${name} exists and is ${existing.Internal ? '' : 'not '}internal, but berth's egress settings need it ${internal ? '' : 'not '}internal: ${remedy}`, { retryable: false });
      }
      return false;
    }
    this.#writes++;
    await this.#call('create a network', signal, () => this.#docker.createNetwork({ Name: name, Driver: 'bridge', Internal: internal, CheckDuplicate: true, Labels: { ...labels }, abortSignal: signal }), { 409: undefined });
    return true;
  }

  async imageExists(ref: string, signal: AbortSignal): Promise<boolean> {
    const info = await this.#call('inspect an image', signal, () => this.#docker.getImage(ref).inspect(), { 404: undefined });
    return info !== undefined;
  }

  /** Pulls an image; a failure carries the daemon's message. */
  async pull(ref: string, signal: AbortSignal): Promise<void> {
    this.#writes++;
    const stream = await this.#call('pull an image', signal, () => this.#docker.pull(ref, { abortSignal: signal }));
    await new Promise<void>((resolve, reject) => {
      this.#docker.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
        const failed = events?.find((e) => typeof e.error === 'string');
        if (err !== null) reject(err);
        else if (failed !== undefined) reject(new Error(failed.error));
        else resolve();
      });
    }).catch((err: unknown) => {
      throw toBackendError(err, 'pull an image', signal);
    });
  }

  /** The last `tail` lines of a container's output, stdout and stderr merged. */
  async logs(id: string, tail: number, signal: AbortSignal): Promise<Buffer> {
    const out = await this.#call('read container logs', signal, () => this.#docker.getContainer(id).logs({ stdout: true, stderr: true, tail, follow: false, abortSignal: signal }));
    return Buffer.isBuffer(out) ? out : Buffer.from(String(out));
  }

  /** The daemon's event stream for containers with these labels, until the signal aborts. */
  events(labels: readonly string[], signal: AbortSignal): Promise<NodeJS.ReadableStream> {
    return this.#call('watch daemon events', signal, () => this.#docker.getEvents({ filters: { type: ['container'], label: [...labels] }, abortSignal: signal }));
  }

  async #call<T, F = never>(what: string, signal: AbortSignal, run: () => Promise<T>, tolerated: Partial<Record<number, F>> = {}): Promise<T | F> {
    if (signal.aborted) throw abortedError(what, signal);
    try {
      return await run();
    } catch (err) {
      const status = (err as DockerApiError).statusCode;
      if (status !== undefined && status in tolerated) return tolerated[status] as F;
      throw toBackendError(err, what, signal);
    }
  }
}

function abortedError(what: string, signal: AbortSignal): BackendError {
  return new BackendError('aborted', `aborted before the daemon could ${what}`, { retryable: true, cause: signal.reason });
}

/** The daemon's own words when it gave any: operators recognise them. */
export function daemonMessage(err: unknown): string {
  const e = err as DockerApiError;
  return e.json?.message ?? e.message ?? String(err);
}

function toBackendError(err: unknown, what: string, signal: AbortSignal): BackendError {
  if (err instanceof BackendError) return err;
  if (signal.aborted || (err as DockerApiError).name === 'AbortError') return abortedError(what, signal);
  const e = err as DockerApiError;
  const message = `cannot ${what}: ${daemonMessage(err)}`;
  if (e.statusCode === undefined) {
    // No HTTP answer: no daemon at the socket, or it went away.
    if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EACCES') {
      return new BackendError('backend_unreachable', message, { retryable: true, cause: err });
    }
    if (what === 'pull an image') return new BackendError('image_missing', message, { retryable: true, cause: err });
    return new BackendError('start_failed', message, { retryable: true, cause: err });
  }
  switch (e.statusCode) {
    case 404:
      return new BackendError(what === 'pull an image' ? 'image_missing' : 'instance_not_found', message, { retryable: true, cause: err });
    case 400:
      // A start refused for a missing executable may succeed once the image is fixed; a bad create never will.
      if (what === 'start a container') return new BackendError('start_failed', message, { retryable: true, cause: err });
      return new BackendError('invalid_spec', message, { retryable: false, cause: err });
    case 401:
    case 403:
      return new BackendError('forbidden', message, { retryable: false, cause: err });
    default:
      return new BackendError(what === 'pull an image' ? 'image_missing' : 'start_failed', message, { retryable: true, cause: err });
  }
}
