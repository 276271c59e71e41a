import { createHash } from 'node:crypto';
import { authProblems } from './auth-checks.ts';
import { readClientKey } from './client-key.ts';
import type { Cidr } from '../net/cidr.ts';
import { containsCidr, parseCidr } from '../net/cidr.ts';
import { linkLocalHostOf } from '../net/link-local.ts';
import type { ConfigIssue, KeyPath } from './issues.ts';
import { formatKeyPath } from './issues.ts';
import { suggest } from './schema.ts';
import type { Positions } from './source.ts';
import type { BerthConfiguration, Component, Credential, Server } from './types.gen.ts';
import { credentialsOf, parseHeaderValue } from './user-template.ts';
import { parseDuration, parseQuantity } from './units.ts';

type ServerKey = keyof Server;

// Which server keys each type and runtime use; anything else is a mistake
// worth reporting (an `image` on an npx server would silently do nothing).
const COMMON: readonly ServerKey[] = ['type', 'description', 'access'];
const BY_TYPE: Readonly<Record<Server['type'], readonly ServerKey[]>> = {
  'single-user': ['runtime', 'resources', 'kubernetes', 'idleTimeout', 'startupTimeout', 'requestTimeout', 'maxInstances', 'credentials'],
  'multi-user': ['runtime', 'resources', 'kubernetes', 'autoscale', 'replicas', 'startupTimeout', 'requestTimeout', 'credentials'],
  remote: ['url', 'transport', 'headers', 'oauth', 'credentials', 'allowLinkLocal'],
  composite: ['components'],
};
const BY_RUNTIME: Readonly<Record<NonNullable<Server['runtime']>, readonly ServerKey[]>> = {
  npx: ['package', 'version', 'args', 'env'],
  uvx: ['package', 'version', 'args', 'env'],
  command: ['command', 'args', 'cwd', 'env', 'transport', 'path', 'headers', 'oauth'],
  container: ['image', 'port', 'path', 'transport', 'publishPort', 'args', 'env', 'headers', 'oauth'],
};
const MIN_DURATION_MS = 1000;

/** Checks that need the whole file: references, cycles, collisions, fit of fields. */
export function checkSemantics(config: BerthConfiguration, file: string, positions: Positions): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const report = (path: KeyPath, code: string, message: string, hint?: string, onKey = false): void => {
    const pos = onKey ? positions.key(path) : positions.value(path);
    issues.push({ code, file, line: pos.line, col: pos.col, path: formatKeyPath(path), message, ...(hint === undefined ? {} : { hint }) });
  };
  const servers = Object.entries(config.servers).filter((e): e is [string, Server] => e[1] !== undefined);
  const names = servers.map(([name]) => name);
  const known = new Set(names);
  const backendType = config.backend?.type ?? 'local';

  for (const [name, server] of servers) {
    const at = (...rest: (string | number)[]): KeyPath => ['servers', name, ...rest];
    checkFieldsFit(server, at, report);
    if (isHosted(server) && server.runtime === 'container' && backendType === 'local') {
      report(at('runtime'), 'container_on_local', 'runtime container needs a container backend', 'set `backend: { type: docker }` or `kubernetes`, or run the server as npx/uvx/command');
    }
    for (const key of ['idleTimeout', 'startupTimeout', 'requestTimeout'] as const) {
      const value = server[key];
      if (value === undefined) continue;
      const millis = parseDuration(value);
      if (millis === undefined) report(at(key), 'invalid_duration', `cannot read duration ${JSON.stringify(value)}`, 'write a number and a unit: 30s, 15m, 1h');
      else if (millis < MIN_DURATION_MS) report(at(key), 'invalid_duration', 'must be at least 1s');
    }
    if (server.resources?.cpu !== undefined && parseQuantity(server.resources.cpu) === undefined) {
      report(at('resources', 'cpu'), 'invalid_quantity', `cannot read CPU quantity ${JSON.stringify(server.resources.cpu)}`, 'write cores (1, 0.5) or millicores (500m)');
    }
    if (server.resources?.memory !== undefined) {
      const bytes = parseQuantity(server.resources.memory);
      if (bytes === undefined || bytes < 1) report(at('resources', 'memory'), 'invalid_quantity', `cannot read memory quantity ${JSON.stringify(server.resources.memory)}`, 'write bytes with a suffix: 256Mi, 1Gi, 512M');
    }
    checkKubernetes(config, server, at, report);
    checkCredentials(config, name, server, at, report);
    checkClientKey(server, at, report);
    if (server.type === 'composite') checkComponents(server.components ?? [], names, known, at, report);
  }
  checkEgress(config.backend?.pods?.egress, (i) => ['backend', 'pods', 'egress', i], report);
  // Docker keeps a server's container on an internal network or lets it reach everywhere; it enforces no narrower CIDR.
  const dockerEgress = config.backend?.type === 'docker' ? (config.backend.pods?.egress ?? []) : [];
  if (dockerEgress.length > 0 && !dockerEgress.includes('0.0.0.0/0')) report(['backend', 'pods', 'egress'], 'egress_unenforceable', 'the docker backend cannot limit egress to these CIDRs: a server\'s container is either on an internal network (no egress) or reaches everywhere', 'declare none to keep servers off the network, or [0.0.0.0/0, "::/0"] to let them reach everywhere; a host firewall can narrow that');
  checkCompositeCycles(servers, report);
  checkCompositeDepth(servers, report);
  checkPublishedPorts(config, servers, report);
  checkApiKeys(config, report);
  checkLinkLocal(config, servers, report);
  for (const problem of authProblems(config)) report([...problem.path], problem.code, problem.message);
  return issues;
}

type Report = (path: KeyPath, code: string, message: string, hint?: string, onKey?: boolean) => void;

function checkFieldsFit(server: Server, at: (...rest: (string | number)[]) => KeyPath, report: Report): void {
  const runtime = isHosted(server) ? server.runtime : undefined;
  const allowed = new Set<string>([...COMMON, ...BY_TYPE[server.type], ...(runtime === undefined ? [] : BY_RUNTIME[runtime])]);
  const current = runtime === undefined ? `type ${server.type}` : `type ${server.type} with runtime ${runtime}`;
  for (const key of Object.keys(server)) {
    if (allowed.has(key)) continue;
    if (key === 'runtime') {
      report(at(key), 'runtime_type_mismatch', `${server.type} servers take no runtime`, server.type === 'remote' ? 'berth proxies `url`; to host the server use type multi-user or single-user' : 'a composite is made of `components`', true);
      continue;
    }
    const users = [
      ...Object.entries(BY_TYPE).filter(([, keys]) => keys.includes(key as ServerKey)).map(([t]) => `type ${t}`),
      ...Object.entries(BY_RUNTIME).filter(([, keys]) => keys.includes(key as ServerKey)).map(([r]) => `runtime ${r}`),
    ];
    report(at(key), 'key_not_applicable', `\`${key}\` does not apply to ${current}`, users.length > 0 ? `used only by ${users.join(', ')}` : undefined, true);
  }
}

/** Only hosted servers run something; a runtime elsewhere is a mistake reported on its own. */
function isHosted(server: Server): boolean {
  return server.type === 'single-user' || server.type === 'multi-user';
}

/** Pod settings only mean something on Kubernetes, and an admin's maximums bound every server before any API write. */
/** private_key_jwt needs a client ID and a key that signs; a key without it would sit unused. */
function checkClientKey(server: Server, at: (...rest: (string | number)[]) => KeyPath, report: Report): void {
  const oauth = server.oauth;
  if (oauth === undefined) return;
  const method = oauth.tokenEndpointAuthMethod;
  if (method === 'private_key_jwt') {
    if (oauth.clientId === undefined) report(at('oauth', 'tokenEndpointAuthMethod'), 'oauth_client_key', 'private_key_jwt is for a pre-registered client', 'set oauth.clientId to the client the authorization server knows with your public key');
    if (oauth.privateKey === undefined) report(at('oauth', 'tokenEndpointAuthMethod'), 'oauth_client_key', 'private_key_jwt needs the key to sign with', 'set oauth.privateKey.key, e.g. ${file:secrets/berth-client.pem}');
  } else if (oauth.privateKey !== undefined) {
    report(at('oauth', 'privateKey'), 'oauth_client_key', `a private key is only used with tokenEndpointAuthMethod private_key_jwt, not ${method ?? 'the default'}`, 'set tokenEndpointAuthMethod: private_key_jwt, or remove privateKey', true);
  }
  if (oauth.privateKey === undefined) return;
  const key = readClientKey(oauth.privateKey);
  if (!key.ok) report(at('oauth', 'privateKey', oauth.privateKey.alg === undefined ? 'key' : key.field), 'oauth_client_key', `the key ${key.problem}`);
}

function checkKubernetes(config: BerthConfiguration, server: Server, at: (...rest: (string | number)[]) => KeyPath, report: Report): void {
  const backendType = config.backend?.type ?? 'local';
  for (const key of ['kubernetes', 'autoscale'] as const) {
    if (server[key] !== undefined && backendType !== 'kubernetes') {
      report(at(key), 'key_not_applicable', `\`${key}\` does not apply to backend ${backendType}`, 'set `backend: { type: kubernetes }`, or remove it', true);
      return;
    }
  }
  checkEgress(server.kubernetes?.egress, (i) => at('kubernetes', 'egress', i), report);
  const autoscale = server.autoscale;
  if (autoscale !== undefined && server.type === 'multi-user') {
    const min = autoscale.minReplicas ?? server.replicas ?? 1;
    if (server.resources?.cpu === undefined) report(at('autoscale'), 'invalid_autoscale', 'autoscaling on CPU needs `resources.cpu`', 'set `resources: { cpu: 500m }` on this server');
    else if (min > autoscale.maxReplicas) report(at('autoscale', 'maxReplicas'), 'invalid_autoscale', `maxReplicas ${autoscale.maxReplicas} is below the minimum of ${min} replicas`);
  }
  const max = config.backend?.maxResources;
  for (const key of ['cpu', 'memory'] as const) {
    const limit = max?.[key];
    const wanted = server.resources?.[key];
    if (limit === undefined || wanted === undefined) continue;
    const [limitValue, wantedValue] = [parseQuantity(limit), parseQuantity(wanted)];
    if (limitValue !== undefined && wantedValue !== undefined && wantedValue > limitValue) {
      report(at('resources', key), 'resources_over_maximum', `${key} ${String(wanted)} is more than backend.maxResources.${key} (${String(limit)})`, 'ask the operator to raise the maximum, or lower the request');
    }
  }
}

/** IPv4-mapped IPv6 addresses: the API server refuses a NetworkPolicy block among them. */
const IPV4_MAPPED = parseCidr('::ffff:0:0/96') as Cidr;

function checkEgress(cidrs: readonly string[] | undefined, at: (i: number) => KeyPath, report: Report): void {
  (cidrs ?? []).forEach((cidr, i) => {
    const parsed = parseCidr(cidr);
    if (parsed === undefined) report(at(i), 'invalid_cidr', `${JSON.stringify(cidr)} is not a CIDR block`, 'write a network address with its prefix length and no host bits: 203.0.113.0/24, 2001:db8::/32');
    else if (containsCidr(IPV4_MAPPED, parsed)) report(at(i), 'invalid_cidr', `${JSON.stringify(cidr)} is an IPv4-mapped IPv6 block, which Kubernetes refuses in a NetworkPolicy`, 'write it as IPv4: ::ffff:10.0.0.0/104 is 10.0.0.0/8');
  });
}

function checkCredentials(config: BerthConfiguration, name: string, server: Server, at: (...rest: (string | number)[]) => KeyPath, report: Report): void {
  const entries: [string, string, Credential][] = [
    ...Object.entries(server.env ?? {}).map(([k, v]) => ['env', k, v] as [string, string, Credential]),
    ...Object.entries(server.headers ?? {}).map(([k, v]) => ['headers', k, v] as [string, string, Credential]),
  ];
  for (const [section, key, value] of entries) {
    if (typeof value !== 'object') continue;
    if (value.fromUser === true && value.value !== undefined) {
      report(at(section, key), 'credential_conflict', 'a credential is either `fromUser` or has a `value`, not both');
    }
    if (value.fromUser !== true && value.value === undefined) {
      report(at(section, key), 'credential_empty', 'a credential needs `value` or `fromUser: true`');
    }
    if (value.fromUser !== true) continue;
    if (section === 'env' && server.type === 'multi-user') {
      report(at(section, key), 'per_user_env_shared', 'a multi-user server has one shared process, so it cannot take per-user environment values', 'use type single-user, or declare it under `credentials` and send it as a header: `Authorization: "Bearer ${user.credentials.NAME}"`');
    }
    const unreachable = whyNoUserReaches(config, server);
    if (unreachable !== undefined) report(at(section, key), 'credential_unreachable', `\`fromUser\` credential on server ${name}, which ${unreachable}`);
  }
  checkUserHeaders(config, name, server, at, report);
}

/** `credentials` and the headers that use them: declared names, no clash with other per-user values, an HTTP upstream to carry them. */
function checkUserHeaders(config: BerthConfiguration, name: string, server: Server, at: (...rest: (string | number)[]) => KeyPath, report: Report): void {
  const declared = Object.keys(server.credentials ?? {});
  if (server.headers !== undefined && server.runtime === 'command' && server.transport === undefined) {
    report(at('headers'), 'headers_need_http', 'a command server speaking stdio has no HTTP requests to carry headers', 'set `transport: streamable-http` or `sse` if the command serves MCP over HTTP on $PORT', true);
  }
  if (server.oauth !== undefined && server.runtime === 'command' && server.transport === undefined) {
    report(at('oauth'), 'headers_need_http', 'a command server speaking stdio has no HTTP requests to carry an OAuth token', 'set `transport: streamable-http` or `sse` if the command serves MCP over HTTP on $PORT', true);
  }
  for (const [header, value] of Object.entries(server.headers ?? {})) {
    const text = typeof value === 'string' ? value : typeof value === 'object' ? value.value : undefined;
    if (text === undefined) continue;
    const parsed = parseHeaderValue(text);
    if (parsed.kind === 'static') continue;
    const where = typeof value === 'string' ? at('headers', header) : at('headers', header, 'value');
    for (const ref of credentialsOf(parsed.parts).filter((n) => !declared.includes(n))) {
      const hint = suggest(ref, declared) ?? (declared.length === 0 ? `declare it: \`credentials: { ${ref}: { description: "…" } }\`` : `this server's credentials are: ${declared.join(', ')}`);
      report(where, 'unknown_user_credential', `\${user.credentials.${ref}} is not declared in servers.${name}.credentials`, hint);
    }
  }
  const elsewhere = new Set([...Object.entries(server.env ?? {}), ...Object.entries(server.headers ?? {})].filter(([, v]) => typeof v === 'object' && v.fromUser === true).map(([k]) => k));
  const unreachable = declared.length === 0 ? undefined : whyNoUserReaches(config, server);
  for (const credential of declared) {
    if (elsewhere.has(credential)) report(at('credentials', credential), 'credential_duplicate', `\`${credential}\` is also a \`fromUser\` value in \`env\` or \`headers\`; each user stores one value per name`, 'rename one of them', true);
    if (unreachable !== undefined) report(at('credentials', credential), 'credential_unreachable', `credential on server ${name}, which ${unreachable}`, undefined, true);
  }
}

/** Why no authenticated user can reach a server, or undefined when some can. */
function whyNoUserReaches(config: BerthConfiguration, server: Server): string | undefined {
  const providers = config.auth ?? [];
  if (!providers.some((p) => p.type !== 'none')) return 'no authenticated user can reach: add an apiKey, jwt or header auth provider';
  const { users = [], groups = [], scopes = [] } = server.access ?? {};
  if (server.access !== undefined && users.length === 0 && groups.length === 0 && scopes.length === 0) return 'its `access` admits nobody';
  if (server.access === undefined || !providers.every((p) => p.type === 'apiKey' || p.type === 'none')) return undefined;
  if (scopes.length > 0) return 'its `access` requires scopes, which apiKey users do not carry';
  const keys = providers.flatMap((p) => p.keys ?? []);
  const admitted = keys.some((k) => users.includes(k.user) || (k.groups ?? []).some((g) => groups.includes(g)));
  return admitted ? undefined : 'its `access` admits none of the apiKey users';
}

function checkComponents(components: readonly Component[], names: readonly string[], known: ReadonlySet<string>, at: (...rest: (string | number)[]) => KeyPath, report: Report): void {
  const exposed = new Map<string, string>();
  components.forEach((component, i) => {
    if (!known.has(component.server)) {
      report(at('components', i, 'server'), 'unknown_server', `unknown server \`${component.server}\``, suggest(component.server, names) ?? `servers are: ${names.join(', ')}`);
    }
    if (component.timeout !== undefined && parseDuration(component.timeout) === undefined) {
      report(at('components', i, 'timeout'), 'invalid_duration', `cannot read duration ${JSON.stringify(component.timeout)}`, 'write a number and a unit: 30s, 15m, 1h');
    }
    const tools = component.tools ?? {};
    const include = tools.include;
    for (const section of ['rename', 'descriptions'] as const) {
      for (const tool of Object.keys(tools[section] ?? {})) {
        if (include !== undefined && !include.includes(tool)) {
          report(at('components', i, 'tools', section, tool), 'tool_not_included', `\`${tool}\` is not in \`include\``, suggest(tool, include), true);
        }
        if (tools.exclude?.includes(tool)) {
          report(at('components', i, 'tools', section, tool), 'tool_excluded', `\`${tool}\` is also in \`exclude\``, undefined, true);
        }
      }
    }
    // Collisions are knowable for the tools a component surely exposes: its
    // `include` list or, without one, the tools it renames. Each is reported
    // where its exposed name is written.
    const rename = tools.rename ?? {};
    const sure: [string, KeyPath][] =
      include === undefined
        ? Object.keys(rename).filter((tool) => !tools.exclude?.includes(tool)).map((tool) => [tool, at('components', i, 'tools', 'rename', tool)])
        : include.map((tool, k) => [tool, rename[tool] === undefined ? at('components', i, 'tools', 'include', k) : at('components', i, 'tools', 'rename', tool)]);
    for (const [tool, where] of sure) {
      const finalName = `${component.prefix ?? ''}${rename[tool] ?? tool}`;
      const origin = `${component.server}.${tool}`;
      const previous = exposed.get(finalName);
      if (previous !== undefined) report(where, 'tool_collision', `tool name \`${finalName}\` from ${origin} collides with ${previous}`, 'give one component a `prefix` or `rename` one tool');
      else exposed.set(finalName, origin);
    }
  });
}

/**
 * Depth-first, each server explored once: a component that leads back onto
 * the current path closes a cycle, reported at that component. Without those
 * edges no cycle is left, so the reports name every fix. Walking every path
 * instead was exponential in layers of composites sharing components.
 */
function checkCompositeCycles(servers: readonly [string, Server][], report: Report): void {
  const edges = new Map(servers.map(([name, s]) => [name, (s.components ?? []).map((c) => c.server)]));
  const reported = new Set<string>();
  const path: string[] = [];
  const onPath = new Map<string, number>(); // a server on the current path → its place there
  const done = new Set<string>();
  const walk = (node: string, next: readonly string[]): void => {
    onPath.set(node, path.length);
    path.push(node);
    for (const target of next) {
      const at = onPath.get(target);
      if (at !== undefined) {
        const cycle = [...path.slice(at), target];
        const key = [...cycle.slice(0, -1)].sort().join(',');
        if (reported.has(key)) continue;
        reported.add(key);
        report(['servers', node, 'components', next.indexOf(target), 'server'], 'composite_cycle', `composites form a cycle: ${cycle.join(' → ')}`, 'a composite cannot contain itself, directly or through others');
      } else if (!done.has(target)) {
        const further = edges.get(target);
        if (further !== undefined) walk(target, further);
      }
    }
    path.pop();
    onPath.delete(node);
    done.add(node);
  };
  for (const [start, next] of edges) if (!done.has(start)) walk(start, next);
}

/** How deep composites may nest: each layer costs every call a hop, and a chain thousands deep took berth down. */
export const MAX_COMPOSITE_DEPTH = 32;

/**
 * Reports where a chain of composites crosses MAX_COMPOSITE_DEPTH: at the
 * component of the composite one layer past it, once per such composite.
 * Iterative, so a chain of any length is measured without deep recursion;
 * an edge back onto a cycle (reported by checkCompositeCycles) counts nothing.
 */
function checkCompositeDepth(servers: readonly [string, Server][], report: Report): void {
  const composites = new Map(servers.filter(([, s]) => s.type === 'composite').map(([name, s]) => [name, (s.components ?? []).map((c) => c.server)]));
  const depth = new Map<string, number>();
  const open = new Set<string>();
  for (const root of composites.keys()) {
    const stack = [root];
    while (stack.length > 0) {
      const node = stack[stack.length - 1] ?? root;
      if (depth.has(node)) {
        stack.pop();
        continue;
      }
      const inner = (composites.get(node) ?? []).filter((c) => composites.has(c));
      if (!open.has(node)) {
        open.add(node);
        for (const c of inner) if (!depth.has(c) && !open.has(c)) stack.push(c);
        continue;
      }
      depth.set(node, 1 + inner.reduce((most, c) => Math.max(most, depth.get(c) ?? 0), 0));
      stack.pop();
    }
  }
  for (const [name, inner] of composites) {
    if (depth.get(name) !== MAX_COMPOSITE_DEPTH + 1) continue;
    const i = inner.findIndex((c) => depth.get(c) === MAX_COMPOSITE_DEPTH);
    report(['servers', name, 'components', i, 'server'], 'composite_too_deep', `composites nest ${MAX_COMPOSITE_DEPTH + 1} deep here, through ${inner[i]}; the limit is ${MAX_COMPOSITE_DEPTH}`, 'list the servers of the inner composites directly instead of nesting them');
  }
}

function checkPublishedPorts(config: BerthConfiguration, servers: readonly [string, Server][], report: Report): void {
  const claimed = new Map<number, string>();
  for (const [name, server] of servers) {
    const port = server.publishPort;
    if (port === undefined) continue;
    const owner = claimed.get(port);
    if (owner !== undefined) report(['servers', name, 'publishPort'], 'port_conflict', `port ${port} is already published by server ${owner}`);
    else if (port === config.listen?.port) report(['servers', name, 'publishPort'], 'port_conflict', `port ${port} is berth's own listen.port`);
    else claimed.set(port, name);
  }
}

/** URLs berth fetches that point at link-local or metadata addresses, unless allowed where they are given. */
function checkLinkLocal(config: BerthConfiguration, servers: readonly [string, Server][], report: Report): void {
  const check = (url: string | undefined, path: KeyPath, allowed: boolean | undefined, allowAt: string): void => {
    const host = url === undefined || allowed === true ? undefined : linkLocalHostOf(url);
    if (host !== undefined) report(path, 'link_local_url', `${host} is a link-local or cloud metadata address, where the host's cloud credentials are served`, `set \`allowLinkLocal: true\` on ${allowAt} if it is really meant`);
  };
  for (const [name, server] of servers) if (server.type === 'remote') check(server.url, ['servers', name, 'url'], server.allowLinkLocal, `servers.${name}`);
  (config.auth ?? []).forEach((provider, p) => {
    if (provider.type !== 'jwt') return;
    check(provider.issuer, ['auth', p, 'issuer'], provider.allowLinkLocal, `auth[${p}]`);
    check(provider.jwksUri, ['auth', p, 'jwksUri'], provider.allowLinkLocal, `auth[${p}]`);
    check(provider.introspection?.endpoint, ['auth', p, 'introspection', 'endpoint'], provider.allowLinkLocal, `auth[${p}]`);
  });
}

function checkApiKeys(config: BerthConfiguration, report: Report): void {
  const seen = new Map<string, string>();
  (config.auth ?? []).forEach((provider, p) => {
    (provider.keys ?? []).forEach((key, k) => {
      const digest = key.sha256 ?? (key.key === undefined ? undefined : createHash('sha256').update(key.key).digest('hex'));
      if (digest === undefined) return;
      const owner = seen.get(digest);
      if (owner !== undefined) report(['auth', p, 'keys', k], 'duplicate_api_key', `this key is already given to user ${owner}`);
      else seen.set(digest, key.user);
    });
  });
}
