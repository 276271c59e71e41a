// What a container of a placement looks like: its name, labels and create
// options. Pure: the same placement and settings always give the same result,
// which is what makes adoption and "no writes when unchanged" possible.
import { parseQuantity } from '../../config/units.ts';
import { hashSpec } from '../../desired/hash.ts';
import type { Unit } from '../../desired/types.ts';
import type { Placement } from '../backend.ts';
import { BackendError } from '../backend.ts';
import { commandFor } from '../local/command.ts';
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
  /** Image that runs npx/uvx/command servers behind `berth bridge` (berth's own image or one built from it). */
  readonly runtimeImage: string;
  readonly readOnlyRootFilesystem: boolean;
  /** Writable tmpfs mounts, e.g. /tmp, when the root filesystem is read-only. */
  readonly tmpfs: readonly string[];
  readonly pidsLimit: number;
}

export const LABEL = {
  owner: 'berth.owner',
  unit: 'berth.unit',
  user: 'berth.user',
  specHash: 'berth.spec-hash',
  replica: 'berth.replica',
  /** Hash of the backend settings a container was made with; a change recreates it. */
  settings: 'berth.settings',
  port: 'berth.port',
  path: 'berth.path',
  transport: 'berth.transport',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;

/** Where `berth bridge` listens inside a container of a stdio server. */
export const BRIDGE_PORT = 8080;
const BRIDGE_PATH = '/mcp';
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

export function ownerLabels(owner: string): Record<string, string> {
  return { [LABEL.owner]: owner, [LABEL.managedBy]: 'berth' };
}

export function settingsHash(settings: DockerSettings): string {
  const { owner: _owner, pull: _pull, ...relevant } = settings;
  return hashSpec(relevant);
}

/** How the server inside listens: its port, path and transport. */
export function listenerOf(unit: Unit, assignedPort: number | undefined): { port: number; path: string; transport: 'streamable-http' | 'sse' } {
  const spec = unit.spec;
  if (spec.runtime === 'container') return { port: assignedPort ?? spec.port, path: spec.path, transport: spec.transport };
  return { port: assignedPort ?? BRIDGE_PORT, path: BRIDGE_PATH, transport: 'streamable-http' };
}

export function imageOf(unit: Unit, settings: DockerSettings): string {
  return unit.spec.runtime === 'container' ? unit.spec.image : settings.runtimeImage;
}

/**
 * The create options of one instance. `assignedPort` is set in host network
 * mode only: the loopback port the server must listen on (passed as PORT).
 */
export function createOptions(settings: DockerSettings, placement: Placement, slot: Slot, assignedPort?: number): ContainerCreateOptions {
  const unit = placement.unit;
  const spec = unit.spec;
  const listener = listenerOf(unit, assignedPort);
  const env: Record<string, string> = { ...spec.env.values, ...placement.user?.env };
  if (assignedPort !== undefined) Object.assign(env, { PORT: String(assignedPort), HOST: '127.0.0.1' });
  const labels: Record<string, string> = {
    ...ownerLabels(settings.owner),
    [LABEL.unit]: unit.name,
    [LABEL.specHash]: unit.specHash,
    [LABEL.replica]: String(slot.replica),
    [LABEL.settings]: settingsHash(settings),
    [LABEL.port]: String(listener.port),
    [LABEL.path]: listener.path,
    [LABEL.transport]: listener.transport,
    ...(slot.userHash === undefined ? {} : { [LABEL.user]: slot.userHash }),
  };
  const portKey = `${listener.port}/tcp`;
  const published = settings.networkMode === 'published';
  const fixed = spec.runtime === 'container' && spec.publishPort !== undefined && slot.userHash === undefined && slot.replica === 0 ? spec.publishPort : undefined;
  const bindings = [
    ...(published ? [{ HostIp: settings.publishHost, HostPort: '' }] : []),
    ...(fixed !== undefined && settings.networkMode !== 'host' ? [{ HostIp: settings.publishHost, HostPort: String(fixed) }] : []),
  ];
  return {
    name: containerName(settings.owner, unit, slot),
    Image: imageOf(unit, settings),
    Cmd: commandOf(unit, listener.port, assignedPort === undefined ? '0.0.0.0' : '127.0.0.1'),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    ...(spec.runtime === 'command' && spec.cwd !== undefined && spec.cwd.startsWith('/') ? { WorkingDir: spec.cwd } : {}),
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

/** A stdio server runs behind `berth bridge`, the runtime image's entrypoint; a container server runs its own command. */
function commandOf(unit: Unit, port: number, host: string): string[] | undefined {
  const spec = unit.spec;
  if (spec.runtime === 'container') return spec.args.length > 0 ? [...spec.args] : undefined;
  const { command, args } = commandFor(spec);
  return ['bridge', '--host', host, '--port', String(port), '--', command, ...args];
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
