// Waiting longer after each failure: the one spelling every retry in berth uses.

/** How a retry delay grows: from `initialMs`, doubling per failure in a row, never past `maxMs`. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Reconnecting to something that went away (a remote, a daemon's event stream, a pod's API read): 0.5 s doubling to 30 s. */
export const RECONNECT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000 };

/**
 * The delay before the next try after `failures` failures in a row (0 or 1:
 * the first retry). Jittered to a random point in the upper half of the
 * doubled delay, so callers that failed together (units on one daemon, users
 * of one remote) do not all retry at the same moment.
 */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
