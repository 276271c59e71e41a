import type { KeyPath } from '../config/issues.ts';
import type { ClientDocument } from './document.ts';
import type { Data } from './fields.ts';
import { isRecord } from './fields.ts';
import type { ClientServer, Field, Parts, Report } from './model.ts';

// The MCP Registry's server.json (schema 2025-12-11): one file, a list of
// them, or a registry API listing (`{ servers: [{ server, _meta }] }`).
// A package says how to run the server; a remote where it already runs.
// Inputs without a value become prompts; `{name}` in a value is a variable.

/** Every server.json in the document, with its key path. */
export function registryEntries(data: unknown): { server: Data; path: KeyPath }[] {
  const one = (value: unknown, path: KeyPath): { server: Data; path: KeyPath }[] => {
    if (!isRecord(value)) return [];
    if (isRecord(value['server'])) return [{ server: value['server'], path: [...path, 'server'] }];
    return typeof value['name'] === 'string' ? [{ server: value, path }] : [];
  };
  if (Array.isArray(data)) return data.flatMap((item, i) => one(item, [i]));
  if (isRecord(data) && Array.isArray(data['servers'])) return data['servers'].flatMap((item, i) => one(item, ['servers', i]));
  return one(data, []);
}

/** Whether data looks like server.json or a registry listing. */
export function isRegistryShape(data: unknown): boolean {
  const [first] = registryEntries(data);
  return first !== undefined && (Array.isArray(first.server['packages']) || Array.isArray(first.server['remotes']) || String(first.server['$schema'] ?? '').includes('server.schema.json'));
}

export function readRegistryServers(doc: ClientDocument, report: Report): ClientServer[] {
  const entries = registryEntries(doc.data);
  if (entries.length === 0) report('error', [], 'import_invalid_value', 'no server.json here: expected an object with `name` and `packages` or `remotes`, a list of them, or a registry listing');
  return entries.map(({ server, path }) => readServer(server, path, report));
}

/** The runtimes berth hosts a package with; other registry types are named, not dropped. */
const RUNNERS: Readonly<Record<string, (id: string, version: string) => { command: string; package: string }>> = {
  npm: (id, version) => ({ command: 'npx', package: version === '' ? id : `${id}@${version}` }),
  pypi: (id, version) => ({ command: 'uvx', package: version === '' ? id : `${id}==${version}` }),
  nuget: (id, version) => ({ command: 'dnx', package: version === '' ? id : `${id}@${version}` }),
};

function readServer(server: Data, path: KeyPath, report: Report): ClientServer {
  const name = String(server['name']);
  const common = { name, path: [...path, 'name'], ...(typeof server['description'] === 'string' ? { description: server['description'] } : {}) };
  const packages = Array.isArray(server['packages']) ? server['packages'].filter(isRecord) : [];
  const remotes = Array.isArray(server['remotes']) ? server['remotes'].filter(isRecord) : [];
  const usable = packages.findIndex((p) => typeOf(p) in RUNNERS || typeOf(p) === 'oci');
  const skipped = packages.map(typeOf).filter((t) => !(t in RUNNERS) && t !== 'oci');
  if (usable >= 0) {
    if (skipped.length > 0) report('warning', [...path, 'packages'], 'import_package_unsupported', `package type ${skipped.join(', ')} not used: berth runs npm, pypi, nuget and oci packages`);
    return readPackage(common, packages[usable] ?? {}, [...path, 'packages', usable], report);
  }
  const remote = remotes[0];
  if (remote !== undefined) return readRemote(common, remote, [...path, 'remotes', 0]);
  const why = skipped.length > 0 ? `package type ${skipped.join(', ')} is not one berth runs (npm, pypi, nuget, oci)` : 'it has no packages and no remotes';
  return { kind: 'unsupported', ...common, why };
}

function typeOf(pkg: Data): string {
  return String(pkg['registryType'] ?? 'unknown');
}

type Common = { name: string; path: KeyPath; description?: string };

function readPackage(common: Common, pkg: Data, path: KeyPath, report: Report): ClientServer {
  const type = typeOf(pkg);
  const id = String(pkg['identifier'] ?? '');
  const version = typeof pkg['version'] === 'string' ? pkg['version'] : '';
  const env = inputs(pkg['environmentVariables'], [...path, 'environmentVariables']);
  const runtimeArgs = args(pkg['runtimeArguments'], [...path, 'runtimeArguments']);
  const packageArgs = args(pkg['packageArguments'], [...path, 'packageArguments']);
  const transport = isRecord(pkg['transport']) ? pkg['transport'] : { type: 'stdio' };
  const at = (...rest: (string | number)[]): KeyPath => [...path, ...rest];
  if (type === 'oci') {
    const image = version === '' || id.includes('@') || /:[^/]+$/.test(id) ? id : `${id}:${version}`;
    if (transport['type'] === 'stdio') {
      report('warning', at('transport'), 'import_oci_stdio', 'the image speaks stdio: imported as `docker run -i`, since a berth container serves HTTP', 'runs on hosts with docker; use an HTTP image for the docker and kubernetes backends');
      return { kind: 'stdio', ...common, command: { parts: ['docker'], path: at('registryType') }, args: [...['run', '-i', '--rm'].map((a) => ({ parts: [a], path: at('registryType') })), ...runtimeArgs, { parts: [image], path: at('identifier') }, ...packageArgs], env };
    }
    // `{PORT}` in the URL names an environment variable or argument of the package.
    const named = [pkg['environmentVariables'], pkg['packageArguments'], pkg['runtimeArguments']].flatMap((l) => (Array.isArray(l) ? l.filter(isRecord) : []));
    const variables = Object.fromEntries(named.map((v) => [String(v['valueHint'] ?? v['name'] ?? '').replace(/^-+/, ''), v]));
    const url = substitute(String(transport['url'] ?? ''), variables, at('transport', 'url'));
    return { kind: 'container', ...common, image, url: { parts: url, path: at('transport', 'url') }, transport: transport['type'] === 'sse' ? 'sse' : 'streamable-http', runtimeArgs, args: packageArgs, env };
  }
  if (transport['type'] !== undefined && transport['type'] !== 'stdio') report('warning', at('transport'), 'import_package_http', `the package serves ${String(transport['type'])}; imported as a stdio server`);
  const runner = RUNNERS[type] ?? RUNNERS['npm'];
  const run = runner?.(id, version) ?? { command: type, package: id };
  // npx and dnx ask before installing unless told not to.
  const lead = run.command === 'npx' ? ['-y'] : [];
  const tail = run.command === 'dnx' ? ['--yes'] : [];
  return {
    kind: 'stdio',
    ...common,
    command: { parts: [run.command], path: at('registryType') },
    args: [...runtimeArgs, ...[...lead, run.package, ...tail].map((a) => ({ parts: [a], path: at('identifier') })), ...packageArgs],
    env,
  };
}

function readRemote(common: Common, remote: Data, path: KeyPath): ClientServer {
  const variables = isRecord(remote['variables']) ? remote['variables'] : {};
  const url = substitute(String(remote['url'] ?? ''), variables, [...path, 'url']);
  return {
    kind: 'http',
    ...common,
    transport: remote['type'] === 'sse' ? 'sse' : 'streamable-http',
    url: { parts: url, path: [...path, 'url'] },
    headers: inputs(remote['headers'], [...path, 'headers']),
  };
}

/** KeyValueInputs (environment variables, headers) as named fields; optional ones without a value are left to their defaults. */
function inputs(list: unknown, path: KeyPath): (readonly [string, Field])[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((input, i): (readonly [string, Field])[] => {
    if (!isRecord(input) || typeof input['name'] !== 'string') return [];
    const parts = inputValue(input, input['name'], [...path, i]);
    return parts === undefined ? [] : [[input['name'], { parts, path: [...path, i], secret: input['isSecret'] === true }]];
  });
}

/** Arguments as they go on the command line: `--name value` or the value alone. */
function args(list: unknown, path: KeyPath): Field[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((arg, i): Field[] => {
    if (!isRecord(arg)) return [];
    const at = [...path, i];
    const label = typeof arg['valueHint'] === 'string' ? arg['valueHint'] : typeof arg['name'] === 'string' ? arg['name'].replace(/^-+/, '') : `arg${i}`;
    const value = inputValue(arg, label, at);
    const secret = arg['isSecret'] === true;
    if (arg['type'] === 'named' && typeof arg['name'] === 'string') {
      if (value === undefined) return [];
      return [{ parts: [arg['name']], path: at }, ...(value.length === 0 ? [] : [{ parts: value, path: at, secret }])];
    }
    return value === undefined ? [] : [{ parts: value, path: at, secret }];
  });
}

/** An input's value: `value` (with its variables), else `default`, else a prompt when required; undefined when optional and unset. */
function inputValue(input: Data, label: string, path: KeyPath): Parts | undefined {
  if (typeof input['value'] === 'string') return substitute(input['value'], isRecord(input['variables']) ? input['variables'] : {}, path);
  if (typeof input['default'] === 'string') return [input['default']];
  if (input['isRequired'] !== true && input['isSecret'] !== true) return undefined;
  return [prompt(input, label)];
}

function prompt(input: Data, id: string): Parts[number] {
  return {
    kind: 'prompt',
    id,
    secret: input['isSecret'] === true,
    required: input['isRequired'] === true,
    ...(typeof input['description'] === 'string' ? { description: input['description'] } : {}),
  };
}

/** `{name}` in a value, filled from `variables`: a fixed value or default as text, else a prompt. Unknown names stay as written. */
function substitute(text: string, variables: Data, path: KeyPath): Parts {
  const parts: Parts[number][] = [];
  let last = 0;
  for (const match of text.matchAll(/\{([A-Za-z0-9_.-]+)\}/g)) {
    const variable = variables[match[1] ?? ''];
    if (!isRecord(variable)) continue;
    parts.push(text.slice(last, match.index), ...(inputValue({ isRequired: true, ...variable }, match[1] ?? '', path) ?? []));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts.filter((p) => p !== '');
}
