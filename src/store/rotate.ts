import type { Keyring, StoredValue } from './seal.ts';
import { isSealedUnderCurrent, resealValue } from './seal.ts';
import type { StateStore } from './state.ts';
import { putEntry } from './state.ts';

export interface RotationReport {
  /** Values re-sealed under the current key. */
  readonly resealed: number;
  /** Sealed values that already were under it. */
  readonly current: number;
}

/**
 * Re-seals every sealed value in the state file under the current (first)
 * key, whatever section holds it, in one atomic write. Any value no
 * configured key opens fails the whole rotation, so nothing is half-done.
 */
export async function rotateStateKey(state: StateStore): Promise<RotationReport> {
  return state.update(async (data) => {
    const counts = { resealed: 0, current: 0 };
    await resealTree(state.keyring, data, counts);
    return { changed: counts.resealed > 0, value: counts };
  });
}

async function resealTree(keyring: Keyring, node: unknown, counts: { resealed: number; current: number }): Promise<void> {
  if (node === null || typeof node !== 'object') return;
  const record = node as Record<string, unknown>;
  for (const [key, child] of Object.entries(record)) {
    if (!isSealed(child)) {
      await resealTree(keyring, child, counts);
      continue;
    }
    if (isSealedUnderCurrent(keyring, child)) {
      counts.current++;
      continue;
    }
    putEntry(record, key, await resealValue(keyring, child));
    counts.resealed++;
  }
}

function isSealed(value: unknown): value is StoredValue & { readonly sealed: string } {
  return value !== null && typeof value === 'object' && typeof (value as { sealed?: unknown }).sealed === 'string';
}
