// Retry delays for anything that reconnects by itself (an upstream connection, a daemon's event stream).

/** Exponential backoff with jitter: between half and all of min·2^(failures-1), capped; the first retry after a drop waits about min. */
export function backoff(failures: number, min: number, max: number): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
