import type { Backend } from '../backends/backend.ts';
import type { Logger } from '../observe/log.ts';
import type { Action, Plan } from './plan.ts';

/** How carrying out one action ended. */
export type Outcome = { readonly kind: 'ok' } | { readonly kind: 'failed'; readonly reason: string };

export interface ApplyOptions {
  readonly backend: Backend;
  readonly logger: Logger;
  /** Actions run at once; one slow or broken unit never blocks the others beyond its slot. */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

/** Carries out a plan against a backend; every unit gets its own outcome. */
export async function applyPlan(plan: Plan, options: ApplyOptions): Promise<ReadonlyMap<string, Outcome>> {
  const work = plan.actions.filter((a) => a.kind !== 'keep');
  const outcomes = new Map<string, Outcome>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < work.length) {
      const action = work[next++];
      if (action === undefined) return;
      outcomes.set(action.unit.name, await runAction(action, options));
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, work.length) }, worker));
  return outcomes;
}

async function runAction(action: Action, { backend, logger, signal }: ApplyOptions): Promise<Outcome> {
  const log = logger.child({ unit: action.unit.name, action: action.kind });
  try {
    if (action.kind === 'delete') await backend.remove(action.unit.name, signal);
    else if (action.kind !== 'keep') await backend.ensure(action.unit, signal);
    log.info('unit converged');
    return { kind: 'ok' };
  } catch (err) {
    const reason = (err as Error).message;
    log.warn({ reason }, 'unit failed to converge');
    return { kind: 'failed', reason };
  }
}
