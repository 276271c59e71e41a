import type { LoadedConfig } from '../config/load.ts';
import { loadConfigFile } from '../config/load.ts';
import { ConfigError } from '../config/issues.ts';
import { resolveDesiredState } from '../desired/resolve.ts';
import type { Unit } from '../desired/types.ts';
import type { Action, FieldChange, ObservedState, Plan } from '../reconcile/plan.ts';
import { hasChanges, planChanges, redactPlan } from '../reconcile/plan.ts';
import { exitCode, paint } from './output.ts';
import { printIssues } from './validate.ts';

/** `berth plan [FILE] --from OLD`: what would change, like a reviewer wants to read it. */
export function runPlan(file: string, options: { from?: string; json?: boolean }): number {
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
  const observed: ObservedState = previous === undefined ? { units: [], routes: [] } : resolveDesiredState(previous);
  const plan = planChanges(desired, observed);
  // Units and routes carry secret values (env, sensitive headers); the printed plan never does.
  if (options.json === true) process.stdout.write(`${JSON.stringify({ changes: hasChanges(plan), ...redactPlan(plan) }, null, 2)}\n`);
  else process.stdout.write(renderPlan(plan, file, options.from));
  return hasChanges(plan) ? exitCode.changes : exitCode.ok;
}

const SYMBOLS = { create: ['+', 'green'], replace: ['~', 'yellow'], scale: ['~', 'yellow'], delete: ['-', 'red'], keep: [' ', 'gray'] } as const;

/** The plan as text, terraform-style. */
export function renderPlan(plan: Plan, file: string, from: string | undefined, out: NodeJS.WriteStream = process.stdout): string {
  const lines: string[] = [`berth plan: ${file}${from === undefined ? ' (from nothing)' : ` (from ${from})`}`, ''];
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
  if (lines.length === 2) lines.push('  no changes');
  const summary = [`${counts.create} to create`, `${counts.replace} to replace`, `${counts.scale} to scale`, `${counts.delete} to delete`, `${counts.keep} unchanged`];
  lines.push('', `Plan: ${summary.join(', ')}; ${routeChanges} route change${routeChanges === 1 ? '' : 's'}.`, '');
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
