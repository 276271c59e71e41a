// Per-unit reconciliation, the way controller-runtime runs reconcilers: a
// queue of unit names, a few workers, one attempt per unit at a time, and
// backoff per unit owned here. One slow, failing or hanging unit never holds
// up another, a reload, or shutdown.
import type { ObservedInstance } from '../backends/backend.ts';
import type { Unit } from '../desired/types.ts';
import type { Logger } from '../observe/log.ts';
import type { ConvergeDeps, Outcome } from './apply.ts';
import { convergeUnit, outcomeOf } from './apply.ts';

export interface UnitStatus {
  readonly outcome: Outcome | { readonly kind: 'pending' };
  readonly failures: number;
  readonly at?: string;
}

export interface UnitReconcilerOptions extends ConvergeDeps {
  readonly logger: Logger;
  /** Units converged at once. */
  readonly concurrency?: number;
  /** Bound of one attempt; a backend call that hangs longer is aborted and retried. */
  readonly attemptTimeoutMs?: number;
}

interface Slot {
  failures: number;
  outcome: UnitStatus['outcome'];
  at?: string;
  timer?: NodeJS.Timeout;
}

export class UnitReconciler {
  readonly #o: UnitReconcilerOptions;
  readonly #desired = new Map<string, Unit>();
  readonly #slots = new Map<string, Slot>();
  readonly #queue = new Set<string>();
  readonly #running = new Set<Promise<void>>();
  readonly #inFlight = new Set<string>();
  readonly #closing = new AbortController();
  #snapshot: readonly ObservedInstance[] | undefined;
  #idle: (() => void)[] = [];
  /** Waiters of `attempted`, each with the units it still waits for. */
  readonly #attempts = new Set<{ readonly names: Set<string>; readonly resolve: () => void }>();

  constructor(options: UnitReconcilerOptions) {
    this.#o = options;
  }

  /**
   * Sets what every unit should be and queues the named ones (a unit absent
   * from `desired` is deleted). `snapshot` is the backend's list the plan was
   * made from; first attempts use it instead of listing again.
   */
  enqueue(desired: readonly Unit[], names: Iterable<string>, snapshot?: readonly ObservedInstance[]): void {
    this.#desired.clear();
    for (const unit of desired) this.#desired.set(unit.name, unit);
    this.#snapshot = snapshot;
    for (const name of names) {
      const slot = this.#slot(name);
      // New intent: forget the old backoff.
      clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.failures = 0;
      slot.outcome = { kind: 'pending' };
      this.#queue.add(name);
    }
    this.#pump();
  }

  /**
   * Queues units again toward what they should already be (a backend event,
   * drift found by a resync): level-based, without new intent. A unit waiting
   * on its backoff keeps waiting, and one that failed terminally stays
   * failed until the config changes.
   */
  requeue(names: Iterable<string>, snapshot?: readonly ObservedInstance[]): void {
    this.#snapshot = snapshot;
    for (const name of names) {
      const slot = this.#slots.get(name);
      if (slot?.timer !== undefined || slot?.outcome.kind === 'failed') continue;
      this.#queue.add(name);
    }
    this.#pump();
  }

  /**
   * Resolves once each named unit has had an attempt since it was queued
   * (converged, retrying or failed: provisioned as far as it will be soon),
   * or when `signal` aborts. The controller swaps routes after it.
   */
  attempted(names: Iterable<string>, signal: AbortSignal): Promise<void> {
    const waiting = new Set([...names].filter((name) => this.#slots.get(name)?.outcome.kind === 'pending'));
    if (waiting.size === 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        names: waiting,
        resolve: () => {
          this.#attempts.delete(waiter);
          signal.removeEventListener('abort', waiter.resolve);
          resolve();
        },
      };
      this.#attempts.add(waiter);
      signal.addEventListener('abort', waiter.resolve, { once: true });
    });
  }

  status(): ReadonlyMap<string, UnitStatus> {
    return this.#slots;
  }

  /** Resolves when nothing is queued or running (retries waiting on backoff do not count). */
  idle(): Promise<void> {
    if (this.#queue.size === 0 && this.#inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Aborts attempts in flight and cancels retries; resolves once attempts ended, or after the bound. */
  async close(boundMs = 5_000): Promise<void> {
    this.#closing.abort();
    this.#queue.clear();
    for (const slot of this.#slots.values()) clearTimeout(slot.timer);
    await Promise.race([Promise.allSettled([...this.#running]), new Promise((r) => setTimeout(r, boundMs).unref())]);
  }

  #slot(name: string): Slot {
    let slot = this.#slots.get(name);
    if (slot === undefined) {
      slot = { failures: 0, outcome: { kind: 'pending' } };
      this.#slots.set(name, slot);
    }
    return slot;
  }

  #pump(): void {
    const limit = this.#o.concurrency ?? 8;
    for (const name of this.#queue) {
      if (this.#running.size >= limit || this.#closing.signal.aborted) break;
      if (this.#inFlight.has(name)) continue; // queued again; runs after the current attempt
      this.#queue.delete(name);
      this.#inFlight.add(name);
      const run = this.#attempt(name).finally(() => {
        this.#running.delete(run);
        this.#inFlight.delete(name);
        this.#pump();
        if (this.#queue.size === 0 && this.#inFlight.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
      });
      this.#running.add(run);
    }
  }

  async #attempt(name: string): Promise<void> {
    const slot = this.#slot(name);
    const desired = this.#desired.get(name);
    const log = this.#o.logger.child({ unit: name });
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#o.attemptTimeoutMs ?? 120_000)]);
    const snapshot = slot.failures === 0 ? this.#snapshot : undefined;
    try {
      await convergeUnit(name, desired, this.#o, signal, snapshot);
      slot.outcome = { kind: 'ok' };
      slot.failures = 0;
      log.info({ action: desired === undefined ? 'delete' : 'ensure' }, 'unit converged');
      if (desired === undefined) this.#slots.delete(name);
    } catch (err) {
      if (this.#closing.signal.aborted) return;
      slot.failures += 1;
      const outcome = outcomeOf(err, slot.failures);
      slot.outcome = outcome;
      if (outcome.kind === 'retry') {
        log.warn({ reason: outcome.reason, retryInMs: outcome.afterMs, failures: slot.failures }, 'unit failed to converge; retrying');
        slot.timer = setTimeout(() => {
          slot.timer = undefined;
          this.#queue.add(name);
          this.#pump();
        }, outcome.afterMs);
        slot.timer.unref();
      } else if (outcome.kind === 'failed') {
        log.error({ reason: outcome.reason }, 'unit failed to converge; not retrying until the config changes');
      }
    } finally {
      slot.at = new Date().toISOString();
      for (const waiter of this.#attempts) if (waiter.names.delete(name) && waiter.names.size === 0) waiter.resolve();
    }
  }
}
