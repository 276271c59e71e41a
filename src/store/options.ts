import path from 'node:path';
import type { LoadedConfig } from '../config/load.ts';
import type { StateOptions } from './state.ts';

const DEFAULT_PATH = '.berth/state.json';

/** Where a config's state file is (relative paths start at the config file) and its keys, current first. */
export function stateOptionsOf(loaded: LoadedConfig): StateOptions {
  const state = loaded.config.state ?? {};
  const keys = state.keys ?? (state.key === undefined ? [] : [state.key]);
  return { path: path.resolve(path.dirname(path.resolve(loaded.file)), state.path ?? DEFAULT_PATH), keys };
}
