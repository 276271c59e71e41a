// The ready replicas a backend reports (Kubernetes: EndpointSlices), by
// placement, and the requests and starts waiting for a placement's first one.
// Bookkeeping only: the pool decides what to connect and what to end.
import type { ObservedInstance, PlacementReplicas, ReadyReplica } from '../../backends/backend.ts';
import type { Unit } from '../../desired/types.ts';
import { ProxyError } from '../../http/proxy-error.ts';

interface Waiter {
  readonly check: () => void;
  readonly fail: (reason: string) => void;
}

export class ReadyReplicas {
  readonly #byPlacement = new Map<string, PlacementReplicas>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  /**
   * Why a placement cannot get a pod, as its last failure said (a refusal can
   * come before anyone waits: the cluster refuses a pod within milliseconds of
   * the Deployment). Cleared when it has a ready replica or stops failing.
   */
  readonly #failing = new Map<string, string>();

  /** Records a placement's new ready set; returns the instances that left it. */
  update(update: PlacementReplicas): string[] {
    const key = placementKey(update.unit, update.userHash);
    const before = this.#byPlacement.get(key);
    if (update.ready.length === 0) this.#byPlacement.delete(key);
    else {
      this.#byPlacement.set(key, update);
      this.#failing.delete(key);
    }
    const ready = new Set(update.ready.map((r) => r.instanceId));
    return (before?.ready ?? []).map((r) => r.instanceId).filter((id) => !ready.has(id));
  }

  /** Every placement of a unit with ready replicas: the shared one, or each user's. */
  ofUnit(unit: string): PlacementReplicas[] {
    return [...this.#byPlacement.values()].filter((r) => r.unit === unit);
  }

  /** Waiters on a placement look again (after the pool admitted what changed). */
  wake(unit: string, userHash: string | undefined): void {
    for (const waiter of this.#waiters.get(placementKey(unit, userHash)) ?? []) waiter.check();
  }

  /** Waiters on a placement whose pod keeps failing get the reason now, not at their deadline; so do later ones, until it recovers. */
  fail(instance: ObservedInstance, reason: string): void {
    const key = placementKey(instance.unit, instance.userHash);
    this.#failing.set(key, reason);
    for (const waiter of this.#waiters.get(key) ?? []) waiter.fail(reason);
  }

  /** The placement is starting again, or one of its instances is no longer failing: forget its last failure. */
  recover(unit: string, userHash: string | undefined): void {
    this.#failing.delete(placementKey(unit, userHash));
  }

  /** The placement's first ready replica at the unit's spec, waiting within the signal. */
  first(unit: Unit, userHash: string | undefined, signal: AbortSignal, closing: AbortSignal): Promise<ReadyReplica> {
    const key = placementKey(unit.name, userHash);
    const find = (): ReadyReplica | undefined => this.#byPlacement.get(key)?.ready.find((r) => r.specHash === unit.specHash);
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    const failing = this.#failing.get(key);
    if (failing !== undefined) return Promise.reject(new ProxyError('upstream_unavailable', `server ${unit.name} is not ready: ${failing}`));
    return new Promise((resolve, reject) => {
      const waiters = this.#waiters.get(key) ?? new Set();
      this.#waiters.set(key, waiters);
      const cleanup = (): void => {
        signal.removeEventListener('abort', onAbort);
        waiters.delete(waiter);
        if (waiters.size === 0) this.#waiters.delete(key);
      };
      const fail = (reason: string): void => {
        cleanup();
        reject(new ProxyError('upstream_unavailable', `server ${unit.name} is not ready: ${reason}`));
      };
      const onAbort = (): void => fail(closing.aborted ? 'berth is shutting down' : 'no replica became ready in time');
      const waiter: Waiter = {
        check: () => {
          const replica = find();
          if (replica === undefined) return;
          cleanup();
          resolve(replica);
        },
        fail,
      };
      waiters.add(waiter);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function placementKey(unit: string, userHash: string | undefined): string {
  return userHash === undefined ? unit : `${unit}\n${userHash}`;
}

/** What the pool knows of a replica from the platform's routing data until the backend's events say more. */
export function routedInstance(unit: string, replica: ReadyReplica, userHash: string | undefined): ObservedInstance {
  return { id: replica.instanceId, owner: '', unit, ...(userHash === undefined ? {} : { userHash }), specHash: replica.specHash, replica: 0, state: 'running', restarts: 0, detail: replica.instanceId };
}
