import type { LoadedConfig } from '../config/load.ts';
import type { AuthProvider } from '../config/types.gen.ts';
import { loadConfigFile } from '../config/load.ts';
import { ConfigError } from '../config/issues.ts';
import { restartRequired, restartRequiredByHash } from '../config/restart.ts';
import { resolveDesiredState } from '../desired/resolve.ts';
import type { DesiredState, Unit } from '../desired/types.ts';
import type { Action, FieldChange, ObservedState, Plan, RouteChange } from '../reconcile/plan.ts';
import { hasChanges, planChanges, redactPlan, redactRoute } from '../reconcile/plan.ts';
import { berthUrl, fetchStatus } from './status.ts';
import type { StatusReport } from './status-model.ts';
import { routeHash } from './status-model.ts';
import { exitCode, paint } from './output.ts';
import { printIssues } from './validate.ts';

export interface PlanOptions {
  readonly from?: string;
  /** Plan against the berth running at this URL (`true`: the one the config's listen settings name). */
  readonly running?: string | true;
  readonly json?: boolean;
}

/**
 * `berth plan [FILE]`: what would change, like a reviewer wants to read it;
 * from nothing, from an older file (`--from`) or from the running berth (`--running`).
 */
export async function runPlan(file: string, options: PlanOptions): Promise<number> {
  let next: LoadedConfig;
  let previous: LoadedConfig | undefined;
  try {
    next = loadConfigFile(file);
    previous = options.from === undefined ? undefined : loadConfigFile(options.from);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printIssues(err.issues);
    return exitCode.failed;
  }
  const desired = resolveDesiredState(next);
  let plan: Plan;
  let source: string;
  let needsRestart: string[] = [];
  let auth: string[] = [];
  if (options.running !== undefined) {
    const url = berthUrl(file, options.running === true ? undefined : options.running);
    const report = await fetchStatus(url);
    plan = planAgainstRunning(desired, report);
    // /status hashes every start-up setting; a berth from before that tells only its backend.
    needsRestart =
      report.startUpHashes === undefined
        ? restartRequired({ backend: { type: report.backend as DesiredState['backend'] } }, { backend: { type: desired.backend } })
        : restartRequiredByHash(report.startUpHashes, next.config);
    // A berth from before authHashes says nothing about its auth.
    if (report.authHashes !== undefined) auth = authChanges(report.authHashes, next.config.auth);
    source = `running berth at ${url}`;
  } else {
    const observed: ObservedState = previous === undefined ? { units: [], routes: [] } : resolveDesiredState(previous);
    plan = planChanges(desired, observed);
    if (previous !== undefined) needsRestart = restartRequired(previous.config, next.config);
    if (previous !== undefined) auth = authChanges((previous.config.auth ?? []).map(routeHash), next.config.auth);
    source = options.from ?? 'nothing';
  }
  const changes = hasChanges(plan) || needsRestart.length > 0 || auth.length > 0;
  // Units and routes carry secret values (env, sensitive headers, URL credentials); the printed plan never does.
  const shown = redactPlan(plan);
  if (options.json === true) process.stdout.write(`${JSON.stringify({ changes, ...shown, auth, needsRestart }, null, 2)}\n`);
  else process.stdout.write(renderPlan(shown, file, source, process.stdout, needsRestart, auth));
  return changes ? exitCode.changes : exitCode.ok;
}

/**
 * The auth providers a reload would change, by position: `auth[1] (jwt)`,
 * `auth[2] (apiKey) added`, `auth[3] removed`. Compared by hash, so neither
 * side's values (keys, secrets) are needed or shown.
 */
export function authChanges(previous: readonly string[], next: readonly AuthProvider[] | undefined): string[] {
  const providers = next ?? [];
  const changed: string[] = [];
  for (let i = 0; i < Math.max(previous.length, providers.length); i++) {
    const provider = providers[i];
    if (provider === undefined) changed.push(`auth[${i}] removed`);
    else if (previous[i] !== routeHash(provider)) changed.push(`auth[${i}] (${provider.type})${i >= previous.length ? ' added' : ''}`);
  }
  return changed;
}

/**
 * The running berth reports routes with secrets redacted, so both sides are
 * compared redacted; a route whose hash differs while its visible values do
 * not has a changed secret.
 */
function planAgainstRunning(desired: DesiredState, report: StatusReport): Plan {
  const visible: DesiredState = { ...desired, routes: desired.routes.map(redactRoute) };
  const plan = planChanges(visible, { backend: report.backend as DesiredState['backend'], units: report.units, routes: report.routes });
  const changed = new Set(plan.routes.map((r) => r.route.server));
  const secretChanges: RouteChange[] = desired.routes
    .filter((r) => !changed.has(r.server) && report.routeHashes[r.server] !== undefined && report.routeHashes[r.server] !== routeHash(r))
    .map((r) => ({ kind: 'change', route: redactRoute(r), changes: [{ path: 'secret values', secret: true, from: '(secret)', to: '(secret)' }] }));
  return { actions: plan.actions, routes: [...plan.routes, ...secretChanges].sort((a, b) => (a.route.server < b.route.server ? -1 : 1)) };
}

const SYMBOLS = { create: ['+', 'green'], replace: ['~', 'yellow'], scale: ['~', 'yellow'], delete: ['-', 'red'], keep: [' ', 'gray'] } as const;

/** The plan as text, terraform-style. */
export function renderPlan(plan: Plan, file: string, from: string, out: NodeJS.WriteStream = process.stdout, needsRestart: readonly string[] = [], auth: readonly string[] = []): string {
  const lines: string[] = [`berth plan: ${file} (from ${from})`, ''];
  const counts = { create: 0, replace: 0, scale: 0, delete: 0, keep: 0 };
  const touched = new Set<string>();
  const width = Math.max(0, ...plan.actions.map((a) => a.unit.name.length), ...plan.routes.map((r) => r.route.server.length));
  for (const action of plan.actions) {
    counts[action.kind]++;
    if (action.kind === 'keep') continue;
    touched.add(action.unit.name);
    const [symbol, color] = SYMBOLS[action.kind];
    lines.push(paint(out, color, `  ${symbol} ${action.kind.padEnd(8)} ${action.unit.name.padEnd(width)}`) + describeAction(action));
  }
  let routeChanges = 0;
  for (const change of plan.routes) {
    // A created or deleted unit brings or takes its route; saying so twice is noise.
    if (change.kind !== 'change' && touched.has(change.route.server)) continue;
    routeChanges++;
    const symbol = change.kind === 'add' ? '+' : change.kind === 'remove' ? '-' : '~';
    const color = change.kind === 'add' ? 'green' : change.kind === 'remove' ? 'red' : 'cyan';
    const detail = change.kind === 'change' ? `  ${formatChanges(change.changes)}` : `  (${change.route.kind})`;
    lines.push(paint(out, color, `  ${symbol} route    ${change.route.server.padEnd(width)}`) + detail);
  }
  // Keys, providers and issuers are swapped in at the reload, like routes.
  for (const provider of auth) lines.push(`${paint(out, 'cyan', `  ~ auth     ${provider.padEnd(width)}`)}  (applies on reload)`);
  // berth reads these once, when it starts; a reload reports them and leaves them as they were.
  for (const field of needsRestart) lines.push(`${paint(out, 'magenta', `  ! restart  ${field.padEnd(width)}`)}  (needs restart: applied only when berth starts)`);
  if (lines.length === 2) lines.push('  no changes');
  const summary = [`${counts.create} to create`, `${counts.replace} to replace`, `${counts.scale} to scale`, `${counts.delete} to delete`, `${counts.keep} unchanged`];
  const restart = needsRestart.length === 0 ? '' : `; ${needsRestart.length} setting${needsRestart.length === 1 ? '' : 's'} need${needsRestart.length === 1 ? 's' : ''} restart`;
  const authLine = auth.length === 0 ? '' : `; ${auth.length} auth provider change${auth.length === 1 ? '' : 's'}`;
  lines.push('', `Plan: ${summary.join(', ')}; ${routeChanges} route change${routeChanges === 1 ? '' : 's'}${authLine}${restart}.`, '');
  return lines.join('\n');
}

function describeAction(action: Action): string {
  switch (action.kind) {
    case 'create':
      return `  ${describeUnit(action.unit)}`;
    case 'replace':
      return `  ${formatChanges(action.changes)}`;
    case 'scale':
      return `  replicas: ${action.from} → ${action.to}`;
    default:
      return '';
  }
}

function describeUnit(unit: Unit): string {
  const spec = unit.spec;
  const what = spec.runtime === 'container' ? spec.image : spec.runtime === 'command' ? [spec.command, ...spec.args].join(' ') : spec.package;
  return `(${unit.scope === 'shared' ? 'multi-user' : 'single-user'}, ${spec.runtime} ${what})`;
}

function formatChanges(changes: readonly FieldChange[]): string {
  return `(${changes.map((c) => `${c.path.replaceAll('.values.', '.')}: ${c.from ?? '∅'} → ${c.to ?? '∅'}`).join(', ')})`;
}
