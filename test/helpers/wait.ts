// Waiting in tests: poll a condition until it holds or a deadline passes. Never sleep a fixed time.

export interface WaitOptions {
  /** Fail after this long; default 5 s. */
  readonly timeoutMs?: number;
  /** Says what was awaited, in the failure. */
  readonly message?: string;
  /** Poll interval; default 10 ms. */
  readonly intervalMs?: number;
}

/**
 * Resolves with the first truthy value of `predicate` (sync or async), polled
 * every `intervalMs`; rejects after `timeoutMs` with `message` and the last
 * error the predicate threw, if any.
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const intervalMs = options.intervalMs ?? 10;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value !== undefined && value !== null && value !== false && value !== 0 && value !== '') return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = options.message ?? 'condition';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, lastError === undefined ? undefined : { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
