import { BerthError } from '../errors.ts';
import type { StoredValue } from './seal.ts';
import { sealedProblem } from './seal.ts';
import type { StateStore } from './state.ts';

/** A sealed value the configured keys cannot open, where it is in the state file, and why. */
export interface UnreadableValue {
  /** Its place in the file: `credentials/<user>/<server>/<name>`. */
  readonly path: string;
  readonly code: string;
  readonly message: string;
}

/**
 * Tries every sealed value of the state file with the configured keys, at
 * start: a wrong or rotated key is found now, with the values it cannot
 * open named, not as a failure at the first request that needs one. When no
 * sealed value opens at all, the key is wrong and berth must not start.
 */
export async function checkStateKeys(state: StateStore): Promise<readonly UnreadableValue[]> {
  const found: UnreadableValue[] = [];
  let sealed = 0;
  const walk = async (node: unknown, at: string): Promise<void> => {
    if (node === null || typeof node !== 'object') return;
    if (typeof (node as { sealed?: unknown }).sealed === 'string') {
      sealed++;
      const problem = await sealedProblem(state.keyring, node as StoredValue);
      if (problem !== undefined) found.push({ path: at, code: problem.code, message: problem.message });
      return;
    }
    for (const [key, child] of Object.entries(node)) await walk(child, at === '' ? key : `${at}/${key}`);
  };
  await walk(state.data, '');
  if (sealed > 0 && found.length === sealed) {
    const first = found[0]!;
    throw new BerthError('state_key_wrong', `none of the ${sealed} secrets in the state file ${state.path} opens with the configured state key (${first.path}: ${first.message}); configure the key they were sealed under (after a new one, in \`state.keys\`), or move the file away to start empty`);
  }
  return found;
}
