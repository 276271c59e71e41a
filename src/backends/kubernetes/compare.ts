// Whether a live object still holds everything berth applied. The API server
// adds defaults and status, and other controllers add their own fields, so
// live objects are compared as supersets: every value berth rendered must be
// there, unchanged; anything else is someone else's business.

/** True when every field of `desired` has the same value in `live` (lists: same length, items compared the same way). */
export function isApplied(desired: unknown, live: unknown): boolean {
  if (Array.isArray(desired)) {
    return Array.isArray(live) && live.length === desired.length && desired.every((item, i) => isApplied(item, live[i]));
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    return Object.entries(desired).every(([key, value]) => isApplied(value, (live as Record<string, unknown>)[key]));
  }
  return desired === live;
}
