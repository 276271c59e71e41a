import type { Backend, EventStreamStatus, ObservedInstance } from '../backends/backend.ts';
import { startUpHashes } from '../config/restart.ts';
import { hashSpec } from '../desired/hash.ts';
import type { Route } from '../desired/types.ts';
import { redactUrls } from '../observe/redact.ts';
import { redactRoute } from '../reconcile/plan.ts';
import type { ComponentHealth } from '../proxy/routes/composite.ts';
import type { UpstreamPool } from '../proxy/upstream/pool.ts';
import type { ConnectionStatus, ConnectionSummary } from '../proxy/upstream/http-upstream.ts';
import type { RouteTable } from '../proxy/routes/table.ts';
import type { SessionStore } from '../proxy/downstream/sessions.ts';
import type { Controller, ReloadResult } from '../reconcile/controller.ts';
import { observedUnits } from '../reconcile/controller.ts';
import type { UnitStatus } from '../reconcile/units.ts';

/** One instance in status: the backend's view and the pool's readiness together. */
export interface InstanceStatus {
  readonly id: string;
  readonly unit: string;
  /** The user a per-user instance serves. */
  readonly user?: string;
  /** ready, starting, failing, draining (the pool's), or the backend's state when the pool holds no connection. */
  readonly state: string;
  readonly backendState: string;
  readonly restarts: number;
  readonly sessions: number;
  readonly failure?: string;
  readonly lastError?: string;
  /** Why a ready instance is ready only for users' own sessions (it asks each user for credentials). */
  readonly note?: string;
  /** berth's own connection to an HTTP instance: its state, last error and failed attempts. */
  readonly connection?: ConnectionStatus;
  /** A pid, container or pod. */
  readonly detail?: string;
  /** The last log lines of an instance that is not serving: why it fails, in its own words. */
  readonly logTail?: readonly string[];
  readonly startedAt?: string;
}

/** GET /status: what `berth status` prints and `berth plan --running` plans against. Carries no secrets. */
export interface StatusReport {
  readonly config: string | undefined;
  readonly generation: number;
  readonly lastReload: ReloadReport | undefined;
  readonly backend: string;
  /** A hash of each start-up setting (`listen.port`, …) the berth runs with, so a plan can tell which a config changes. */
  readonly startUpHashes?: Readonly<Record<string, string>>;
  /** The backend's event stream, when it has one that can be lost (Docker's). */
  readonly backendEvents?: EventStreamStatus;
  readonly units: readonly { readonly name: string; readonly specHash: string; readonly replicas: number }[];
  readonly backendType?: string;
  /** The routes as served, secrets redacted. */
  readonly routes: readonly Route[];
  /** Hash of each route as served, so a plan can tell a changed secret it cannot see. */
  readonly routeHashes: Readonly<Record<string, string>>;
  /** Hash of each auth provider in effect, by position, so a plan can tell which ones a reload changes. */
  readonly authHashes?: readonly string[];
  readonly servers: readonly ServerStatus[];
  /** Present when the state file cannot take changes (it was removed while berth served), or holds values the keys cannot open (found at start). */
  readonly stateFile?: { readonly problem?: string; readonly unreadable?: readonly string[] };
}

export interface ServerStatus {
  readonly name: string;
  readonly kind: string;
  readonly scope?: string;
  readonly sessions: number;
  readonly lastError?: string;
  readonly instances: readonly InstanceStatus[];
  /** A composite's components; `down` ones have their tools left out. */
  readonly components?: readonly ComponentHealth[];
  /** A remote's held connection (SSE remotes, and the bridge of legacy SSE clients): its state and last error. */
  readonly connection?: ConnectionStatus;
  /** A remote that each user reaches over an own connection (per-user headers): those connections by state. */
  readonly userConnections?: ConnectionSummary;
}

/** The last reload as /status shows it: its outcome, with `ok` and `errors` always there for scripts. */
export interface ReloadReport {
  readonly result: ReloadResult['kind'];
  readonly ok: boolean;
  readonly at: string;
  readonly reason: string;
  readonly generation: number;
  readonly errors: readonly string[];
  readonly needsRestart?: readonly string[];
}

export function reloadReport(reload: ReloadResult): ReloadReport {
  const { kind, ...rest } = reload;
  return { result: kind, ok: kind === 'applied', errors: [], ...rest };
}

export function routeHash(route: unknown): string {
  return hashSpec(route);
}

/** What the pool knows of instances, with what the backend lists that the pool does not hold. */
export async function instanceStatuses(pool: UpstreamPool, backend: Backend, signal: AbortSignal): Promise<{ instances: InstanceStatus[]; observed: ObservedInstance[] }> {
  const held = pool.status();
  const heldIds = new Set(held.map((u) => u.instance.id));
  const listed = await backend.list(signal).catch(() => []);
  const fromPool = held.map((u): InstanceStatus => ({
    id: u.instance.id,
    unit: u.unit,
    state: u.state,
    backendState: u.instance.state,
    restarts: u.instance.restarts,
    sessions: u.sessions,
    ...(u.user === undefined ? {} : { user: u.user }),
    ...(u.instance.failure === undefined ? {} : { failure: u.instance.failure }),
    ...(u.lastError === undefined ? {} : { lastError: u.lastError }),
    ...(u.note === undefined ? {} : { note: u.note }),
    ...(u.connection === undefined ? {} : { connection: redactConnection(u.connection) }),
    ...(u.instance.detail === undefined ? {} : { detail: u.instance.detail }),
    ...(u.instance.startedAt === undefined ? {} : { startedAt: u.instance.startedAt }),
  }));
  const unheld = listed.filter((i) => !heldIds.has(i.id)).map((i): InstanceStatus => ({
    id: i.id,
    unit: i.unit,
    state: i.state,
    backendState: i.state,
    restarts: i.restarts,
    sessions: 0,
    ...(i.failure === undefined ? {} : { failure: i.failure }),
    ...(i.lastError === undefined ? {} : { lastError: i.lastError }),
    ...(i.detail === undefined ? {} : { detail: i.detail }),
  }));
  const shown = new Set(fromPool.map((i) => `${i.unit}/${i.user ?? ''}`));
  const starting = pool.starting().filter((s) => !shown.has(`${s.unit}/${s.user}`)).map((s): InstanceStatus => ({ id: `${s.unit}/starting`, unit: s.unit, user: s.user, state: 'starting', backendState: 'creating', restarts: 0, sessions: 0 }));
  const instances = await Promise.all([...fromPool, ...starting, ...unheld].map((i) => withLogTail(backend, i, signal)));
  return { instances, observed: [...held.map((u) => u.instance), ...listed.filter((i) => !heldIds.has(i.id))] };
}

export async function buildStatusReport(controller: Controller, pool: UpstreamPool, backend: Backend, sessions: SessionStore, table: RouteTable): Promise<StatusReport> {
  const generation = table.generation;
  const desired = controller.desired;
  const { instances, observed } = await instanceStatuses(pool, backend, AbortSignal.timeout(10_000));
  const counts = sessions.countByServer();
  return {
    config: controller.config?.file,
    generation,
    lastReload: controller.lastReload === undefined ? undefined : reloadReport(controller.lastReload),
    backend: backend.name,
    ...(backend.eventStatus === undefined ? {} : { backendEvents: backend.eventStatus() }),
    ...(controller.config === undefined ? {} : { startUpHashes: startUpHashes(controller.config.config) }),
    units: desired === undefined ? [] : observedUnits(observed, desired, controller.units).map((u) => ({ name: u.name, specHash: u.specHash, replicas: u.replicas })),
    routes: (desired?.routes ?? []).map(redactRoute),
    routeHashes: Object.fromEntries((desired?.routes ?? []).map((r) => [r.server, routeHash(r)])),
    authHashes: (controller.config?.config.auth ?? []).map(routeHash),
    servers: (desired?.routes ?? []).map((route) => {
      const unit = route.kind === 'hosted' ? route.unit : undefined;
      const outcome = unit === undefined ? undefined : controller.units.get(unit)?.outcome;
      return {
        name: route.server,
        kind: route.kind,
        ...(route.kind === 'hosted' ? { scope: route.scope } : {}),
        sessions: counts.get(route.server) ?? 0,
        ...lastErrorOf(outcome, instances.filter((i) => i.unit === unit)),
        instances: instances.filter((i) => i.unit === unit),
        ...componentsOf(table, route.server),
        ...remoteOf(table, route.server),
      };
    }),
  };
}

/** A server's error: its unit's failed convergence, else the first failing instance's reason. */
function lastErrorOf(outcome: UnitStatus['outcome'] | undefined, instances: readonly InstanceStatus[]): { lastError?: string } {
  if (outcome?.kind === 'failed' || outcome?.kind === 'retry') return { lastError: outcome.reason };
  const failing = instances.find((i) => i.state !== 'ready' && i.lastError !== undefined);
  return failing?.lastError === undefined ? {} : { lastError: failing.lastError };
}

function componentsOf(table: RouteTable, server: string): { components?: readonly ComponentHealth[] } {
  const handler = table.handlers.get(server);
  const health = handler?.kind === 'mcp' ? handler.health?.() : undefined;
  return health === undefined ? {} : { components: health };
}

function remoteOf(table: RouteTable, server: string): { connection?: ConnectionStatus; userConnections?: ConnectionSummary } {
  const handler = table.handlers.get(server);
  const connection = handler?.remote?.();
  const userConnections = handler?.userConnections?.();
  return { ...(connection === undefined ? {} : { connection: redactConnection(connection) }), ...(userConnections === undefined ? {} : { userConnections: redactConnection(userConnections) }) };
}

function redactConnection<C extends { readonly lastError?: string }>(connection: C): C {
  return { ...connection, ...(connection.lastError === undefined ? {} : { lastError: redactUrls(connection.lastError) }) };
}

const LOG_TAIL_LINES = 5;

/** A failing instance's last log lines; a healthy one needs none, and a backend that cannot say adds nothing. */
async function withLogTail(backend: Backend, instance: InstanceStatus, signal: AbortSignal): Promise<InstanceStatus> {
  if (instance.failure === undefined && instance.state !== 'failing') return instance;
  const lines = await backend.logs(instance.id, LOG_TAIL_LINES, signal).catch(() => []);
  return lines.length === 0 ? instance : { ...instance, logTail: lines };
}
