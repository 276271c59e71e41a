import { existsSync } from 'node:fs';

const DEFAULT_FILE = 'berth.yaml';

/** The config path rule every command follows: argument, then $BERTH_CONFIG, then ./berth.yaml. */
export function configPath(arg: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return arg ?? (env['BERTH_CONFIG'] !== undefined && env['BERTH_CONFIG'] !== '' ? env['BERTH_CONFIG'] : DEFAULT_FILE);
}

/**
 * The same rule for commands that can do without a config (`berth status`):
 * undefined when none was named and ./berth.yaml does not exist.
 */
export function optionalConfigPath(arg: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = configPath(arg, env);
  return file === DEFAULT_FILE && arg === undefined && !existsSync(file) ? undefined : file;
}
