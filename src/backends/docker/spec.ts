// What a container of a placement looks like: its name, labels and create
// options. Pure: the same placement and settings always give the same result,
// which is what makes adoption and "no writes when unchanged" possible.
import { parseQuantity } from '../../config/units.ts';
import { hashSpec } from '../../desired/hash.ts';
import type { Unit } from '../../desired/types.ts';
import type { Placement } from '../backend.ts';
import { BackendError } from '../backend.ts';
import { ANNOTATIONS, LABELS, ownerLabels } from '../labels.ts';
import { workloadOf } from '../runtime.ts';
import type { ContainerCreateOptions } from './daemon.ts';

export type PullPolicy = 'always' | 'if-not-present' | 'never';

/**
 * How berth reaches its containers: `published` (berth on the host; ports on
 * publishHost, host ports chosen by the daemon), `shared` (berth in a
 * container on the same network; container names), `host` (containers on the
 * host network, listening on a loopback port berth assigns in PORT).
 */
export type NetworkMode = 'published' | 'shared' | 'host';

export interface DockerSettings {
  /** This berth's id; the containers of other owners are never touched. */
  readonly owner: string;
  readonly network: string;
  readonly networkMode: NetworkMode;
  readonly publishHost: string;
  readonly pull: PullPolicy;
  /** Image that runs npx, uvx and command servers (berth's own image or one built from it); see workloadOf. */
  readonly runtimeImage: string;
  readonly readOnlyRootFilesystem: boolean;
  /** Writable tmpfs mounts, e.g. /tmp, when the root filesystem is read-only. */
  readonly tmpfs: readonly string[];
  readonly pidsLimit: number;
  /**
   * backend.pods.egress. Empty: the network is internal, so Docker forwards
   * nothing from it (no internet, no LAN, no other network), and berth on the
   * host reaches containers by their address on it. Otherwise (it covers
   * every address; Docker cannot enforce narrower CIDRs) an ordinary bridge.
   */
  readonly egress: readonly string[];
}

const TMPFS_OPTIONS = 'rw,nosuid,nodev,size=64m';

/** One instance of a placement: a replica of a shared unit, or a user's instance. */
export interface Slot {
  readonly replica: number;
  readonly userHash?: string;
}

export function slotsOf(placement: Placement): Slot[] {
  if (placement.user !== undefined) return [{ replica: 0, userHash: placement.user.hash }];
  return Array.from({ length: placement.unit.replicas }, (_, replica) => ({ replica }));
}

/** Deterministic, so a retried or concurrent create finds the first one instead of making a twin. */
export function containerName(owner: string, unit: Unit, slot: Slot): string {
  const who = slot.userHash === undefined ? `r${slot.replica}` : `u${slot.userHash.slice(0, 12)}`;
  return `berth-${owner}-${unit.name}-${unit.specHash.slice(0, 8)}-${who}`;
}

export function networkName(settings: DockerSettings): string {
  return settings.networkMode === 'host' ? 'host' : settings.network;
}

/** Whether the servers' network is internal: no egress declared, and not the host's network. */
export function isInternal(settings: DockerSettings): boolean {
  return settings.networkMode !== 'host' && settings.egress.length === 0;
}

export function settingsHash(settings: DockerSettings): string {
  const { owner: _owner, pull: _pull, ...relevant } = settings;
  return hashSpec(relevant);
}

/**
 * The create options of one instance. `assignedPort` is set in host network
 * mode only: the loopback port the server must listen on (passed as PORT).
 */
export function createOptions(settings: DockerSettings, placement: Placement, slot: Slot, assignedPort?: number): ContainerCreateOptions {
  const unit = placement.unit;
  const spec = unit.spec;
  const workload = workloadOf(spec, settings.runtimeImage, assignedPort);
  const env: Record<string, string> = { ...workload.env, ...spec.env.values, ...placement.user?.env };
  const labels: Record<string, string> = {
    ...ownerLabels(settings.owner),
    [LABELS.server]: unit.name,
    [LABELS.specHash]: unit.specHash,
    [LABELS.replica]: String(slot.replica),
    [LABELS.settings]: settingsHash(settings),
    [ANNOTATIONS.port]: String(workload.port),
    [ANNOTATIONS.path]: workload.path,
    [ANNOTATIONS.transport]: workload.transport,
    ...(slot.userHash === undefined ? {} : { [LABELS.user]: slot.userHash }),
  };
  const portKey = `${workload.port}/tcp`;
  // Docker publishes no port from an internal network: berth reaches the container at its address there.
  const published = settings.networkMode === 'published' && !isInternal(settings);
  const fixed = spec.runtime === 'container' && spec.publishPort !== undefined && slot.userHash === undefined && slot.replica === 0 && !isInternal(settings) ? spec.publishPort : undefined;
  const bindings = [
    ...(published ? [{ HostIp: settings.publishHost, HostPort: '' }] : []),
    ...(fixed !== undefined && settings.networkMode !== 'host' ? [{ HostIp: settings.publishHost, HostPort: String(fixed) }] : []),
  ];
  return {
    name: containerName(settings.owner, unit, slot),
    Image: workload.image,
    ...(workload.entrypoint === undefined ? {} : { Entrypoint: [...workload.entrypoint] }),
    ...(workload.args.length === 0 && workload.entrypoint === undefined ? {} : { Cmd: [...workload.args] }),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    ...(workload.workingDir === undefined ? {} : { WorkingDir: workload.workingDir }),
    ExposedPorts: { [portKey]: {} },
    HostConfig: {
      NetworkMode: networkName(settings),
      ...(bindings.length > 0 ? { PortBindings: { [portKey]: bindings } } : {}),
      RestartPolicy: { Name: 'no' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: settings.readOnlyRootFilesystem,
      Tmpfs: Object.fromEntries(settings.tmpfs.map((p) => [p, TMPFS_OPTIONS])),
      PidsLimit: settings.pidsLimit,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
      ...limitsOf(unit),
    },
  };
}

function limitsOf(unit: Unit): { Memory?: number; MemorySwap?: number; NanoCpus?: number } {
  const resources = unit.spec.resources;
  const out: { Memory?: number; MemorySwap?: number; NanoCpus?: number } = {};
  if (resources?.memory !== undefined) {
    const bytes = parseQuantity(resources.memory);
    if (bytes === undefined || bytes < 1) throw new BackendError('invalid_spec', `server ${unit.name}: cannot read memory ${resources.memory}`, { retryable: false });
    // No swap beyond the limit: a server over its memory is OOM-killed and reported, not slowed down.
    out.Memory = Math.round(bytes);
    out.MemorySwap = Math.round(bytes);
  }
  if (resources?.cpu !== undefined) {
    const cores = parseQuantity(resources.cpu);
    if (cores === undefined || cores <= 0) throw new BackendError('invalid_spec', `server ${unit.name}: cannot read cpu ${resources.cpu}`, { retryable: false });
    out.NanoCpus = Math.round(cores * 1e9);
  }
  return out;
}
