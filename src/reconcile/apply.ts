// Converging one unit: the only place the controller touches the backend and
// the upstream pool. Level-based: it reads the world and converges, whatever
// happened before.
import type { Backend, ObservedInstance } from '../backends/backend.ts';
import { backoffDelay } from '../backoff.ts';
import { BackendError } from '../backends/backend.ts';
import type { BerthConfiguration } from '../config/types.gen.ts';
import type { DesiredState, Unit } from '../desired/types.ts';

/** How converging one unit ended; the controller owns the retries. */
export type Outcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'retry'; readonly afterMs: number; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string };

/** An accepted config, as the controller pushes it to the pool: one value per accepted config. */
export interface AcceptedConfig {
  readonly config: Readonly<BerthConfiguration>;
  readonly desired: DesiredState;
}

/** What the controller needs from the proxy's upstream pool. */
export interface UnitUpstreams {
  /** The settings its units' connections use; pushed before the config's units converge. */
  configure(accepted: AcceptedConfig): void;
  publish(unit: Unit, instances: readonly ObservedInstance[]): void;
  retire(unit: string, signal: AbortSignal): Promise<void>;
}

export interface ConvergeDeps {
  readonly backend: Backend;
  readonly upstreams: UnitUpstreams;
}

/**
 * Makes one unit match `desired` (undefined: the unit is gone). Shared units
 * get their instances ensured; per-user ones only become known, their
 * instances start on first use. Never waits for MCP readiness: the pool does.
 * `snapshot` is a fresh `list()` shared by every unit of one reload.
 */
export async function convergeUnit(name: string, desired: Unit | undefined, deps: ConvergeDeps, signal: AbortSignal, snapshot?: readonly ObservedInstance[]): Promise<void> {
  const observed = (snapshot ?? (await deps.backend.list(signal))).filter((i) => i.unit === name);
  if (desired === undefined) {
    await deps.upstreams.retire(name, signal);
    // Whatever the pool did not hold (left by an earlier berth) goes too.
    for (const instance of observed) await deps.backend.remove(instance.id, signal);
    return;
  }
  const ensured = desired.scope === 'shared' ? await deps.backend.ensure({ unit: desired }, signal) : [];
  const ensuredIds = new Set(ensured.map((i) => i.id));
  deps.upstreams.publish(desired, [...ensured, ...observed.filter((i) => !ensuredIds.has(i.id))]);
}

/** Retry delays per unit: doubling from 1 s to 5 min. */
const UNIT_BACKOFF = { initialMs: 1_000, maxMs: 300_000 };

/** The outcome an error from converging stands for. */
export function outcomeOf(err: unknown, failures: number): Outcome {
  const reason = err instanceof Error ? err.message : String(err);
  if (err instanceof BackendError && !err.retryable) return { kind: 'failed', reason };
  return { kind: 'retry', afterMs: backoffDelay(failures, UNIT_BACKOFF), reason };
}
