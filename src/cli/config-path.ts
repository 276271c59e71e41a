/** The config path rule every command follows: argument, then $BERTH_CONFIG, then ./berth.yaml. */
export function configPath(arg: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return arg ?? (env['BERTH_CONFIG'] !== undefined && env['BERTH_CONFIG'] !== '' ? env['BERTH_CONFIG'] : 'berth.yaml');
}
