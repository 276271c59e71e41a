import type { LoadedConfig } from '../config/load.ts';
import type { Component, Credential, Server } from '../config/types.gen.ts';
import { parseDuration } from '../config/units.ts';
import { hashSpec } from './hash.ts';
import type { TemplatePart } from '../config/user-template.ts';
import { parseHeaderValue } from '../config/user-template.ts';
import type { ComponentRoute, DesiredState, OAuthSettings, Resources, Route, Settings, Unit, UnitSpec, UserCredential, UserHeaders } from './types.ts';

const DEFAULT_IDLE_TIMEOUT = '15m';
const DEFAULT_REQUEST_TIMEOUT = '5m';
const DEFAULT_MAX_INSTANCES = 100;
const DEFAULT_COMPONENT_TIMEOUT = '10s';
const DEFAULT_STARTUP_TIMEOUT = '60s';

/** Turns a checked config into units to run and routes to serve. Pure. */
export function resolveDesiredState(loaded: LoadedConfig): DesiredState {
  const units: Unit[] = [];
  const routes: Route[] = [];
  const backend = loaded.config.backend?.type ?? 'local';
  for (const [name, server] of Object.entries(loaded.config.servers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (server === undefined) continue;
    const base = { server: name, ...(server.description === undefined ? {} : { description: server.description }), ...(server.access === undefined ? {} : { access: server.access }) };
    switch (server.type) {
      case 'single-user':
      case 'multi-user': {
        const scope = server.type === 'single-user' ? 'per-user' : 'shared';
        const spec = resolveSpec(server);
        // Backend and scope are part of identity: moving a server to another backend, or
        // between one shared instance and one per user, replaces it.
        units.push({
          name,
          scope,
          spec,
          specHash: hashSpec({ backend, scope, spec }),
          replicas: scope === 'shared' ? (server.replicas ?? 1) : 0,
          startupTimeoutMs: parseDuration(server.startupTimeout ?? DEFAULT_STARTUP_TIMEOUT) ?? 60_000,
        });
        routes.push({
          ...base,
          kind: 'hosted',
          unit: name,
          scope,
          ...resolveHeaders(server),
          ...optionalOAuth(server),
          requestTimeoutMs: parseDuration(server.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT) ?? 300_000,
          ...(scope === 'per-user' ? { idleTimeoutMs: parseDuration(server.idleTimeout ?? DEFAULT_IDLE_TIMEOUT) ?? 0, maxInstances: server.maxInstances ?? DEFAULT_MAX_INSTANCES } : {}),
        });
        break;
      }
      case 'remote':
        routes.push({ ...base, kind: 'remote', url: server.url ?? '', transport: server.transport ?? 'streamable-http', ...resolveHeaders(server), ...optionalOAuth(server) });
        break;
      case 'composite':
        routes.push({ ...base, kind: 'composite', components: (server.components ?? []).map(resolveComponent) });
        break;
    }
  }
  return { backend, units, routes };
}

function resolveSpec(server: Server): UnitSpec {
  const args = server.args ?? [];
  const env = resolveSettings(server.env);
  // Every runtime may set limits: docker and kubernetes run stdio servers in containers too.
  // Pod settings restart pods, so they are part of the spec (and its hash) when set.
  const resources = {
    ...(server.resources === undefined ? {} : { resources: resolveResources(server.resources) }),
    ...(server.kubernetes === undefined && server.autoscale === undefined ? {} : { kubernetes: { ...server.kubernetes, ...(server.autoscale === undefined ? {} : { autoscale: server.autoscale }) } }),
  };
  switch (server.runtime) {
    case 'npx':
    case 'uvx': {
      const separator = server.runtime === 'npx' ? '@' : '==';
      const pkg = server.version === undefined ? (server.package ?? '') : `${server.package ?? ''}${separator}${server.version}`;
      return { runtime: server.runtime, package: pkg, args, env, ...resources };
    }
    case 'command': {
      // Without `transport` the server speaks stdio; the key stays absent so existing units keep their specHash.
      const http = server.transport === undefined ? {} : { transport: server.transport, path: server.path ?? '/mcp' };
      return { runtime: 'command', command: server.command ?? '', args, ...(server.cwd === undefined ? {} : { cwd: server.cwd }), ...http, env, ...resources };
    }
    case 'container':
      return {
        runtime: 'container',
        image: server.image ?? '',
        port: server.port ?? 0,
        path: server.path ?? '/mcp',
        transport: server.transport ?? 'streamable-http',
        args,
        env,
        ...resources,
        ...(server.publishPort === undefined ? {} : { publishPort: server.publishPort }),
      };
    default:
      // The schema requires a runtime for hosted servers; reaching here is a bug.
      throw new Error(`hosted server without runtime: ${JSON.stringify(server)}`);
  }
}

function resolveResources(resources: NonNullable<Server['resources']>): Resources {
  return {
    ...(resources.cpu === undefined ? {} : { cpu: String(resources.cpu) }),
    ...(resources.memory === undefined ? {} : { memory: resources.memory }),
  };
}

function resolveSettings(entries: Readonly<Record<string, Credential | undefined>> | undefined): Settings {
  const values: Record<string, string> = {};
  const sensitive: string[] = [];
  const fromUser: Settings['fromUser'][number][] = [];
  for (const [name, entry] of Object.entries(entries ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (entry === undefined) continue;
    if (typeof entry !== 'object') {
      values[name] = String(entry);
      continue;
    }
    if (entry.sensitive === true) sensitive.push(name);
    if (entry.fromUser === true) {
      fromUser.push({ name, required: entry.required ?? true, sensitive: entry.sensitive ?? false, ...(entry.description === undefined ? {} : { description: entry.description }) });
    } else if (entry.value !== undefined) {
      values[name] = entry.value;
    }
  }
  return { values, sensitive, fromUser };
}

/**
 * A route's headers: fixed values, headers each caller fills from their own
 * credentials (`${user.credentials.NAME}` in a value, or a `fromUser` header,
 * which is the credential itself) and the `credentials` users supply.
 */
function resolveHeaders(server: Server): { headers: Settings } & UserHeaders {
  const settings = resolveSettings(server.headers);
  const values: Record<string, string> = {};
  const templates: Record<string, readonly TemplatePart[]> = {};
  for (const [name, text] of Object.entries(settings.values)) {
    const parsed = parseHeaderValue(text);
    if (parsed.kind === 'static') values[name] = parsed.value;
    else templates[name] = parsed.parts;
  }
  for (const field of settings.fromUser) templates[field.name] = [{ credential: field.name }];
  const credentials: UserCredential[] = Object.entries(server.credentials ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .flatMap(([name, c]) => (c === undefined ? [] : [{ name, required: c.required ?? true, sensitive: c.sensitive ?? true, ...(c.description === undefined ? {} : { description: c.description }) }]));
  const sorted = Object.fromEntries(Object.entries(templates).sort(([a], [b]) => (a < b ? -1 : 1)));
  return {
    headers: { ...settings, values },
    ...(Object.keys(sorted).length === 0 ? {} : { userHeaders: sorted }),
    ...(credentials.length === 0 ? {} : { credentials }),
  };
}

function optionalOAuth(server: Server): { oauth?: OAuthSettings } {
  const o = server.oauth;
  if (o === undefined) return {};
  return {
    oauth: {
      scopes: o.scopes ?? [],
      perUser: o.perUser ?? true,
      allowPrivateNetworks: o.allowPrivateNetworks ?? false,
      ...(o.authorizationServer === undefined ? {} : { authorizationServer: o.authorizationServer }),
      ...(o.clientId === undefined ? {} : { clientId: o.clientId }),
      ...(o.clientSecret === undefined ? {} : { clientSecret: o.clientSecret }),
      ...(o.tokenEndpointAuthMethod === undefined ? {} : { tokenEndpointAuthMethod: o.tokenEndpointAuthMethod }),
      ...(o.privateKey === undefined ? {} : { privateKey: o.privateKey }),
      ...(o.clientMetadataUrl === undefined ? {} : { clientMetadataUrl: o.clientMetadataUrl }),
    },
  };
}

function resolveComponent(component: Component): ComponentRoute {
  const tools = component.tools ?? {};
  return {
    server: component.server,
    prefix: component.prefix ?? '',
    timeoutMs: parseDuration(component.timeout ?? DEFAULT_COMPONENT_TIMEOUT) ?? 10_000,
    ...(component.access === undefined ? {} : { access: component.access }),
    tools: {
      ...(tools.include === undefined ? {} : { include: tools.include }),
      ...(tools.exclude === undefined ? {} : { exclude: tools.exclude }),
      rename: Object.fromEntries(Object.entries(tools.rename ?? {}).filter((e): e is [string, string] => e[1] !== undefined)),
      descriptions: Object.fromEntries(Object.entries(tools.descriptions ?? {}).filter((e): e is [string, string] => e[1] !== undefined)),
    },
  };
}
