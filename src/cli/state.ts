import { loadConfigFile } from '../config/load.ts';
import { BerthError } from '../errors.ts';
import { stateOptionsOf } from '../store/options.ts';
import { rotateStateKey } from '../store/rotate.ts';
import { StateStore } from '../store/state.ts';
import { exitCode } from './output.ts';

/** `berth state rotate-key [FILE]`: re-seals every secret in the state file under the first configured key. */
export async function runRotateKey(file: string): Promise<number> {
  const options = stateOptionsOf(loadConfigFile(file));
  if (options.keys.length === 0) {
    throw new BerthError('state_key_missing', `${file}: no state key is configured; set \`state.keys\` with the new key first and the old one after it`);
  }
  const state = await StateStore.open(options);
  const report = await rotateStateKey(state);
  const kid = state.keyring.keys[0]?.kid ?? '';
  process.stdout.write(`${options.path}: re-encrypted ${report.resealed} value${report.resealed === 1 ? '' : 's'} under key ${kid} (${report.current} already were)\n`);
  return exitCode.ok;
}
