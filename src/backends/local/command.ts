// What a local unit runs: its command line and its environment.
import type { UnitSpec } from '../../desired/types.ts';

/** How a unit of the local backend is started. */
export function commandFor(spec: UnitSpec): { command: string; args: string[]; cwd?: string } {
  switch (spec.runtime) {
    case 'npx':
      return { command: 'npx', args: ['-y', spec.package, ...spec.args] };
    case 'uvx':
      return { command: 'uvx', args: [spec.package, ...spec.args] };
    case 'command':
      return spec.cwd === undefined ? { command: spec.command, args: [...spec.args] } : { command: spec.command, args: [...spec.args], cwd: spec.cwd };
    case 'container':
      throw new Error(`the local backend cannot run runtime container (image ${spec.image}); use a docker or kubernetes backend`);
  }
}

const ENV_NAMES = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR']);
const ENV_PROXY_NAMES = new Set(['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY']);
const ENV_PREFIXES = ['NPM_CONFIG_', 'UV_'];

/** The environment of a child: the allow-listed part of `base`, then the declared values. */
export function childEnv(declared: Readonly<Record<string, string>>, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined) continue;
    const upper = name.toUpperCase();
    if (ENV_NAMES.has(name) || ENV_PROXY_NAMES.has(upper) || ENV_PREFIXES.some((p) => upper.startsWith(p))) env[name] = value;
  }
  return { ...env, ...declared };
}
