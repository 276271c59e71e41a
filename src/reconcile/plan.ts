import { canonicalJson } from '../desired/hash.ts';
import type { DesiredState, Route, Settings, Unit, UnitSpec } from '../desired/types.ts';

/** A unit as found running (or as an older config declared it). */
export interface ObservedUnit {
  readonly name: string;
  readonly specHash: string;
  readonly replicas: number;
  /** Known when planning between two configs; backends may report only the hash. */
  readonly spec?: UnitSpec;
}

export interface ObservedState {
  /** The backend the units run on, when known; a different one replaces every unit. */
  readonly backend?: DesiredState['backend'];
  readonly units: readonly ObservedUnit[];
  readonly routes: readonly Route[];
}

/** One field that differs; secret values are never carried, only the fact of change. */
export interface FieldChange {
  readonly path: string;
  readonly from?: string;
  readonly to?: string;
  readonly secret?: true;
}

export type Action =
  | { readonly kind: 'create'; readonly unit: Unit }
  | { readonly kind: 'replace'; readonly unit: Unit; readonly changes: readonly FieldChange[] }
  | { readonly kind: 'scale'; readonly unit: Unit; readonly from: number; readonly to: number }
  | { readonly kind: 'delete'; readonly unit: ObservedUnit }
  | { readonly kind: 'keep'; readonly unit: Unit };

export type RouteChange =
  | { readonly kind: 'add'; readonly route: Route }
  | { readonly kind: 'change'; readonly route: Route; readonly changes: readonly FieldChange[] }
  | { readonly kind: 'remove'; readonly route: Route };

export interface Plan {
  /** One per unit in desired ∪ observed, sorted by unit name. */
  readonly actions: readonly Action[];
  /** Only routes that differ, sorted by server. */
  readonly routes: readonly RouteChange[];
}

/** Diffs desired against observed. Pure; the result never depends on input order. */
export function planChanges(desired: DesiredState, observed: ObservedState): Plan {
  const running = new Map(observed.units.map((u) => [u.name, u]));
  const actions: Action[] = [];
  for (const unit of desired.units) {
    const current = running.get(unit.name);
    running.delete(unit.name);
    if (current === undefined) actions.push({ kind: 'create', unit });
    else if (current.specHash !== unit.specHash) actions.push({ kind: 'replace', unit, changes: replaceReasons(current, unit, observed.backend, desired.backend) });
    else if (unit.scope === 'shared' && current.replicas !== unit.replicas) actions.push({ kind: 'scale', unit, from: current.replicas, to: unit.replicas });
    else actions.push({ kind: 'keep', unit });
  }
  for (const unit of running.values()) actions.push({ kind: 'delete', unit });
  actions.sort((a, b) => compare(a.unit.name, b.unit.name));
  return { actions, routes: diffRoutes(desired.routes, observed.routes) };
}

/** True when applying the plan would change anything. */
export function hasChanges(plan: Plan): boolean {
  return plan.routes.length > 0 || plan.actions.some((a) => a.kind !== 'keep');
}

/** The state a backend reaches by carrying out the plan: what planning against it should see. */
export function observedAfter(plan: Plan, desired: DesiredState): ObservedState {
  const units = plan.actions.filter((a) => a.kind !== 'delete').map((a) => ({ name: a.unit.name, specHash: a.unit.specHash, replicas: a.unit.replicas, spec: (a.unit as Unit).spec }));
  return { backend: desired.backend, units, routes: desired.routes };
}

function diffRoutes(next: readonly Route[], previous: readonly Route[]): RouteChange[] {
  const before = new Map(previous.map((r) => [r.server, r]));
  const changes: RouteChange[] = [];
  for (const route of next) {
    const old = before.get(route.server);
    before.delete(route.server);
    if (old === undefined) changes.push({ kind: 'add', route });
    else if (canonicalJson(old) !== canonicalJson(route)) changes.push({ kind: 'change', route, changes: diffValues(old, route, '', secretPaths(old, route)) });
  }
  for (const route of before.values()) changes.push({ kind: 'remove', route });
  return changes.sort((a, b) => compare(a.route.server, b.route.server));
}

function replaceReasons(current: ObservedUnit, unit: Unit, fromBackend: string | undefined, toBackend: string): FieldChange[] {
  const backend: FieldChange[] = fromBackend !== undefined && fromBackend !== toBackend ? [{ path: 'backend', from: fromBackend, to: toBackend }] : [];
  const spec = current.spec === undefined ? [] : diffValues(current.spec, unit.spec, '', secretPaths(current.spec, unit.spec));
  const reasons = [...backend, ...spec];
  return reasons.length > 0 ? reasons : [{ path: 'specHash', from: current.specHash, to: unit.specHash }];
}

/**
 * Paths of values that must never be printed: every env value (environment
 * is where credentials live) and headers marked sensitive.
 */
function secretPaths(...values: readonly (UnitSpec | Route)[]): Set<string> {
  const paths = new Set<string>();
  for (const value of values) {
    const env = 'env' in value ? (value.env as Settings) : undefined;
    for (const name of Object.keys(env?.values ?? {})) paths.add(`env.values.${name}`);
    const headers = 'headers' in value ? (value.headers as Settings) : undefined;
    for (const name of headers?.sensitive ?? []) paths.add(`headers.values.${name}`);
    if ('oauth' in value && value.oauth?.clientSecret !== undefined) paths.add('oauth.clientSecret');
  }
  return paths;
}

function diffValues(from: unknown, to: unknown, path: string, secrets: ReadonlySet<string>): FieldChange[] {
  if (canonicalJson(from ?? null) === canonicalJson(to ?? null)) return [];
  const bothObjects = isRecord(from) && isRecord(to);
  if (bothObjects) {
    const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort(compare);
    return keys.flatMap((k) => diffValues(from[k], to[k], path === '' ? k : `${path}.${k}`, secrets));
  }
  const change: FieldChange = { path, ...(from === undefined ? {} : { from: show(from) }), ...(to === undefined ? {} : { to: show(to) }) };
  if (!secrets.has(path)) return [change];
  return [{ path, secret: true, ...(from === undefined ? {} : { from: '(secret)' }), ...(to === undefined ? {} : { to: '(secret)' }) }];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : canonicalJson(value);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
