// What /readyz answers. berth is ready once, at start-up, every shared server
// it hosts has a ready instance or has had its verdict (crash loop, failed
// start, startup timeout): a load balancer then sends traffic that can be
// served. From then on it stays ready, so one server that breaks later (or a
// reload that adds a slow one) never takes every other server out of rotation;
// `notReady` names such servers all along.
import type { DesiredState } from '../desired/types.ts';
import type { UpstreamStatus } from '../proxy/upstream/instance-upstream.ts';

export interface Readiness {
  readonly ready: boolean;
  readonly notReady: readonly string[];
}

export class StartupReadiness {
  readonly #now: () => number;
  readonly #since: number;
  #settled = false;

  /** `now` read at construction starts every server's startup timeout, as far as readiness goes. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#since = now();
  }

  check(desired: DesiredState | undefined, upstreams: readonly UpstreamStatus[]): Readiness {
    const notReady = notReadyServers(desired, upstreams);
    if (!this.#settled && desired !== undefined) {
      const elapsed = this.#now() - this.#since;
      const waiting = desired.units.filter((u) => u.scope === 'shared' && notReady.includes(u.name) && elapsed < u.startupTimeoutMs && !upstreams.some((s) => s.unit === u.name && s.user === undefined && s.gaveUp === true));
      this.#settled = waiting.length === 0;
    }
    return { ready: this.#settled, notReady };
  }
}

/**
 * Shared servers not ready to serve: those with an instance that is not
 * ready, and those with none yet (a unit still converging, or failing to).
 */
function notReadyServers(desired: DesiredState | undefined, upstreams: readonly UpstreamStatus[]): string[] {
  const shared = upstreams.filter((u) => u.user === undefined);
  const notReady = new Set(shared.filter((u) => u.state !== 'ready').map((u) => u.unit));
  for (const unit of desired?.units ?? []) if (unit.scope === 'shared' && !shared.some((u) => u.unit === unit.name)) notReady.add(unit.name);
  return [...notReady].sort();
}
