// When an instance that keeps exiting counts as crash-looping: one policy for
// every backend that restarts instances itself (local children, Docker
// containers). Kubernetes has the kubelet's CrashLoopBackOff.

/** This many starts within CRASH_LOOP_WINDOW_MS make an instance crash-looping. */
export const CRASH_LOOP_STARTS = 3;
export const CRASH_LOOP_WINDOW_MS = 60_000;

/** The starts (ms since the epoch) still inside the window at `now`, and whether they make a crash loop. */
export function crashLoopOf(starts: readonly number[], now: number): { readonly recent: number[]; readonly looping: boolean } {
  const recent = starts.filter((t) => now - t < CRASH_LOOP_WINDOW_MS);
  return { recent, looping: recent.length >= CRASH_LOOP_STARTS };
}
