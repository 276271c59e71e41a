import { canonicalJson } from '../desired/hash.ts';
import { redactUrls } from '../observe/redact.ts';
import type { DesiredState, Route, Settings, Unit, UnitSpec, UserHeaders } from '../desired/types.ts';

/** A unit as found running (or as an older config declared it). */
export interface ObservedUnit {
  readonly name: string;
  readonly specHash: string;
  readonly replicas: number;
  /** Known when planning between two configs; backends may report only the hash. */
  readonly spec?: UnitSpec;
  readonly scope?: Unit['scope'];
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
  const units = plan.actions.filter((a) => a.kind !== 'delete').map((a) => ({ name: a.unit.name, specHash: a.unit.specHash, replicas: a.unit.replicas, spec: (a.unit as Unit).spec, scope: (a.unit as Unit).scope }));
  return { backend: desired.backend, units, routes: desired.routes };
}

const SECRET = '(secret)';

/** The plan with every secret value (see secretPaths) replaced by `(secret)` and URL credentials by `REDACTED`: safe to print or store. */
export function redactPlan(plan: Plan): Plan {
  const actions = plan.actions.map((action): Action => {
    if (action.kind === 'delete') return action.unit.spec === undefined ? action : { ...action, unit: { ...action.unit, spec: redactSpec(action.unit.spec) } };
    return { ...action, unit: { ...action.unit, spec: redactSpec(action.unit.spec) } };
  });
  return { actions, routes: plan.routes.map((change) => ({ ...change, route: redactRoute(change.route) })) };
}

function redactSpec(spec: UnitSpec): UnitSpec {
  const args = spec.args.map(redactUrls);
  const env = redactSettings(spec.env, Object.keys(spec.env.values));
  // npx and uvx take git and tarball URLs as packages, credentials included.
  return spec.runtime === 'container' || spec.runtime === 'command' ? { ...spec, args, env } : { ...spec, package: redactUrls(spec.package), args, env };
}

/** A route with its secret values replaced, fit for /status and printed plans. */
export function redactRoute(route: Route): Route {
  if (route.kind === 'composite') return route;
  const o = route.oauth;
  const oauth = o === undefined ? {} : { oauth: { ...o, ...(o.clientSecret === undefined ? {} : { clientSecret: SECRET }), ...(o.privateKey === undefined ? {} : { privateKey: { ...o.privateKey, key: SECRET } }) } };
  const secret = [...route.headers.sensitive, ...Object.keys(route.headers.values).filter((name) => CREDENTIAL_HEADER.test(name))];
  const url = route.kind === 'remote' ? { url: redactUrls(route.url) } : {};
  const userHeaders = route.userHeaders === undefined ? {} : { userHeaders: redactTemplates(route.userHeaders, route.headers.sensitive) };
  return { ...route, headers: redactSettings(route.headers, secret), ...userHeaders, ...oauth, ...url };
}

/** An auth scheme before a credential (`Bearer `, `Basic `): text, not a secret. */
const AUTH_SCHEME = /^[A-Za-z][A-Za-z0-9-]*\s+$/;

/**
 * Per-user header templates hold names, not values; but fixed text beside a
 * reference may be one (`${env:ORG_KEY}:${user.credentials.KEY}`). In a
 * secret header, all fixed text except an auth scheme shows as (secret).
 */
function redactTemplates(templates: NonNullable<UserHeaders['userHeaders']>, sensitive: readonly string[]): NonNullable<UserHeaders['userHeaders']> {
  return Object.fromEntries(
    Object.entries(templates).map(([name, parts]) => [name, isSecretHeader(name, sensitive) ? parts.map((p) => (typeof p === 'string' && !AUTH_SCHEME.test(p) ? SECRET : p)) : parts]),
  );
}

function isSecretHeader(name: string, sensitive: readonly string[]): boolean {
  return sensitive.includes(name) || CREDENTIAL_HEADER.test(name);
}

function redactSettings(settings: Settings, secret: readonly string[]): Settings {
  return { ...settings, values: Object.fromEntries(Object.entries(settings.values).map(([name, value]) => [name, secret.includes(name) ? SECRET : value])) };
}

function diffRoutes(next: readonly Route[], previous: readonly Route[]): RouteChange[] {
  const before = new Map(previous.map((r) => [r.server, r]));
  const changes: RouteChange[] = [];
  for (const route of next) {
    const old = before.get(route.server);
    before.delete(route.server);
    if (old === undefined) changes.push({ kind: 'add', route });
    else if (!sameJson(old, route)) changes.push({ kind: 'change', route, changes: diffValues(old, route, '', secretPaths(old, route)) });
  }
  for (const route of before.values()) changes.push({ kind: 'remove', route });
  return changes.sort((a, b) => compare(a.route.server, b.route.server));
}

function replaceReasons(current: ObservedUnit, unit: Unit, fromBackend: string | undefined, toBackend: string): FieldChange[] {
  const backend: FieldChange[] = fromBackend !== undefined && fromBackend !== toBackend ? [{ path: 'backend', from: fromBackend, to: toBackend }] : [];
  const scope: FieldChange[] = current.scope !== undefined && current.scope !== unit.scope ? [{ path: 'scope', from: current.scope, to: unit.scope }] : [];
  const spec = current.spec === undefined ? [] : diffValues(current.spec, unit.spec, '', secretPaths(current.spec, unit.spec));
  const reasons = [...backend, ...scope, ...spec];
  return reasons.length > 0 ? reasons : [{ path: 'specHash', from: current.specHash, to: unit.specHash }];
}

/** Header names that carry credentials by convention, secret even when not marked sensitive. */
const CREDENTIAL_HEADER = /authorization|token|secret|key|cookie|password/i;

/**
 * Paths of values that must never be printed: every env value (environment
 * is where credentials live), headers marked sensitive or named like a credential.
 */
function secretPaths(...values: readonly (UnitSpec | Route)[]): Set<string> {
  const paths = new Set<string>();
  for (const value of values) {
    const env = 'env' in value ? (value.env as Settings) : undefined;
    for (const name of Object.keys(env?.values ?? {})) paths.add(`env.values.${name}`);
    const headers = 'headers' in value ? (value.headers as Settings) : undefined;
    for (const name of headers?.sensitive ?? []) paths.add(`headers.values.${name}`);
    for (const name of Object.keys(headers?.values ?? {})) if (CREDENTIAL_HEADER.test(name)) paths.add(`headers.values.${name}`);
    const templates = 'userHeaders' in value ? value.userHeaders : undefined;
    for (const name of Object.keys(templates ?? {})) if (isSecretHeader(name, headers?.sensitive ?? [])) paths.add(`userHeaders.${name}`);
    if ('oauth' in value && value.oauth?.clientSecret !== undefined) paths.add('oauth.clientSecret');
    if ('oauth' in value && value.oauth?.privateKey !== undefined) paths.add('oauth.privateKey.key');
  }
  return paths;
}

function diffValues(from: unknown, to: unknown, path: string, secrets: ReadonlySet<string>): FieldChange[] {
  if (sameJson(from ?? null, to ?? null)) return [];
  // An object that appears or disappears is diffed key by key too, so a secret
  // inside it (oauth.clientSecret) is masked like any other.
  const objects = (isRecord(from) || from === undefined) && (isRecord(to) || to === undefined);
  if (objects) {
    const before = (from ?? {}) as Record<string, unknown>;
    const after = (to ?? {}) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort(compare);
    const changes = keys.flatMap((k) => diffValues(before[k], after[k], path === '' ? k : `${path}.${k}`, secrets));
    // `{}` against nothing differs but has no key to name.
    if (changes.length > 0) return changes;
  }
  // A list of objects (a composite's components) is diffed item by item: one changed tool list reads as
  // that path, not as the whole list twice. A list of plain values is short and shown whole.
  if (Array.isArray(from) && Array.isArray(to) && [...from, ...to].every(isRecord)) {
    const changes = Array.from({ length: Math.max(from.length, to.length) }, (_, i) => diffValues(from[i], to[i], `${path}[${i}]`, secrets)).flat();
    if (changes.length > 0) return changes;
  }
  const change: FieldChange = { path, ...(from === undefined ? {} : { from: show(from) }), ...(to === undefined ? {} : { to: show(to) }) };
  if (!secrets.has(path)) return [change];
  return [{ path, secret: true, ...(from === undefined ? {} : { from: SECRET }), ...(to === undefined ? {} : { to: SECRET }) }];
}

/**
 * Equal as canonical JSON (key order and undefined properties never matter),
 * without serializing: comparing every route this way is the planner's hot path.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as readonly unknown[];
    return a.length === other.length && a.every((v, i) => sameJson(v ?? null, other[i] ?? null));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left).filter((k) => left[k] !== undefined);
  return keys.length === Object.keys(right).filter((k) => right[k] !== undefined).length && keys.every((k) => right[k] !== undefined && sameJson(left[k], right[k]));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A changed value as printed; URLs anywhere in it lose their credentials. */
function show(value: unknown): string {
  return redactUrls(typeof value === 'string' ? value : canonicalJson(value));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
