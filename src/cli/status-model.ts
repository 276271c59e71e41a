import type { Backend, InstanceStatus } from '../backends/backend.ts';
import { hashSpec } from '../desired/hash.ts';
import type { Route } from '../desired/types.ts';
import { redactRoute } from '../reconcile/plan.ts';
import type { SessionStore } from '../proxy/sessions.ts';
import type { Controller, ReloadResult } from '../reconcile/controller.ts';

/** GET /status: what `berth status` prints and `berth plan --running` plans against. Carries no secrets. */
export interface StatusReport {
  readonly config: string | undefined;
  readonly generation: number;
  readonly lastReload: ReloadResult | undefined;
  readonly backend: string;
  readonly units: readonly { readonly name: string; readonly specHash: string; readonly replicas: number }[];
  readonly backendType?: string;
  /** The routes as served, secrets redacted. */
  readonly routes: readonly Route[];
  /** Hash of each route as served, so a plan can tell a changed secret it cannot see. */
  readonly routeHashes: Readonly<Record<string, string>>;
  readonly servers: readonly ServerStatus[];
}

export interface ServerStatus {
  readonly name: string;
  readonly kind: string;
  readonly scope?: string;
  readonly sessions: number;
  readonly lastError?: string;
  readonly instances: readonly InstanceStatus[];
}

export function routeHash(route: unknown): string {
  return hashSpec(route);
}

export async function buildStatusReport(controller: Controller, backend: Backend, sessions: SessionStore): Promise<StatusReport> {
  const desired = controller.desired;
  const instances = backend.status();
  const counts = sessions.countByServer();
  const units = await backend.list();
  return {
    config: controller.config?.file,
    generation: controller.table.generation,
    lastReload: controller.lastReload,
    backend: backend.name,
    units: units.map((u) => ({ name: u.name, specHash: u.specHash, replicas: u.replicas })),
    routes: (desired?.routes ?? []).map(redactRoute),
    routeHashes: Object.fromEntries((desired?.routes ?? []).map((r) => [r.server, routeHash(r)])),
    servers: (desired?.routes ?? []).map((route) => {
      const unit = route.kind === 'hosted' ? route.unit : undefined;
      const outcome = unit === undefined ? undefined : controller.outcomes.get(unit);
      return {
        name: route.server,
        kind: route.kind,
        ...(route.kind === 'hosted' ? { scope: route.scope } : {}),
        sessions: counts.get(route.server) ?? 0,
        ...(outcome?.kind === 'failed' ? { lastError: outcome.reason } : {}),
        instances: instances.filter((i) => i.unit === unit),
      };
    }),
  };
}
