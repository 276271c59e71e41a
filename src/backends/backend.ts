import type { Unit } from '../desired/types.ts';
import type { Multiplexer } from '../proxy/multiplex.ts';
import type { ObservedUnit } from '../reconcile/plan.ts';

/** Lifecycle state of one running instance, as status and metrics show it. */
export type InstanceState = 'starting' | 'ready' | 'backoff' | 'crash-looping' | 'stopping' | 'stopped';

export interface InstanceStatus {
  readonly unit: string;
  /** The user a per-user instance belongs to. */
  readonly user?: string;
  readonly state: InstanceState;
  readonly restarts: number;
  readonly sessions: number;
  readonly lastError?: string;
  readonly pid?: number;
  readonly startedAt?: string;
}

/** Where the proxy sends a unit's traffic. */
export type Endpoint = { readonly kind: 'mcp'; readonly mux: Multiplexer } | { readonly kind: 'http'; readonly url: string };

/**
 * Runs units. Everything above this interface is backend-agnostic. Effectful
 * methods take an AbortSignal; `ensure` is idempotent (an unchanged unit
 * costs nothing) and `remove` drains before it stops.
 */
export interface Backend {
  readonly name: 'local' | 'docker' | 'kubernetes';
  /** Units this backend runs for berth, with the specHash they were started from. */
  list(signal?: AbortSignal): Promise<ObservedUnit[]>;
  /** Starts or replaces a unit's shared instances; per-user units only become known. */
  ensure(unit: Unit, signal?: AbortSignal): Promise<void>;
  /** Stops every instance of a unit. */
  remove(name: string, signal?: AbortSignal): Promise<void>;
  /**
   * The endpoint for a user's traffic to a unit, starting a per-user instance
   * on first use. During a replacement the old instances serve until the new
   * ones are ready.
   */
  endpoint(name: string, user: string, signal?: AbortSignal): Promise<Endpoint>;
  /** Recent log lines of a unit's instances. */
  logs(name: string): readonly string[];
  status(): readonly InstanceStatus[];
  /** Stops everything; used on shutdown. */
  close(): Promise<void>;
}
