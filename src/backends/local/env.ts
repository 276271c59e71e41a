// The environment a local child gets: an allow-list of berth's own, then its declared values.
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
