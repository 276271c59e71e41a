import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { renderPlan } from '../../src/cli/plan.ts';
import type { LoadedConfig } from '../../src/config/load.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { Access, BerthConfiguration, Component, Credential, Oauth, Resources, Server } from '../../src/config/types.gen.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import type { DesiredState } from '../../src/desired/types.ts';
import type { FieldChange, ObservedState, ObservedUnit, Plan } from '../../src/reconcile/plan.ts';
import { hasChanges, observedAfter, planChanges, redactPlan } from '../../src/reconcile/plan.ts';

type BackendType = 'local' | 'docker' | 'kubernetes';

/** Runs a config through the real loader, so every case is a config berth accepts. */
function load(servers: Record<string, Server>, backend: BackendType = 'docker'): LoadedConfig {
  const config: BerthConfiguration = { version: 1, backend: { type: backend }, auth: [{ type: 'jwt', issuer: 'https://idp.example.com' }], servers };
  const result = parseConfig('test.yaml', JSON.stringify(config), { env: {}, readFile: () => '', baseDir: '/' });
  if (!result.ok) assert.fail(`test config is invalid:\n${result.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  return result.value;
}

function desired(servers: Record<string, Server>, backend?: BackendType): DesiredState {
  return resolveDesiredState(load(servers, backend));
}

const NOTHING: ObservedState = { units: [], routes: [] };

/** The plan as a reader checks it: one line per action and route change, plus the changed fields. */
function summarize(plan: Plan) {
  const unitChanges: Record<string, readonly FieldChange[]> = {};
  const routeChanges: Record<string, readonly FieldChange[]> = {};
  const actions = plan.actions.map((a) => {
    if (a.kind === 'replace') unitChanges[a.unit.name] = a.changes;
    return a.kind === 'scale' ? `scale ${a.unit.name} ${a.from}→${a.to}` : `${a.kind} ${a.unit.name}`;
  });
  const routes = plan.routes.map((r) => {
    if (r.kind === 'change') routeChanges[r.route.server] = r.changes;
    return `${r.kind} ${r.route.server}`;
  });
  return { actions, unitChanges, routes, routeChanges };
}

const files: Server = { type: 'multi-user', runtime: 'npx', package: '@acme/files', version: '1.0.0', args: ['stdio'], env: { API_TOKEN: 'tok-OLD-1234', LOG_LEVEL: 'info' } };
const tool: Server = { type: 'single-user', runtime: 'command', command: '/usr/bin/tool', args: ['--stdio'], idleTimeout: '15m' };
const gh: Server = {
  type: 'multi-user',
  runtime: 'container',
  image: 'ghcr.io/acme/gh:v1',
  port: 8080,
  headers: { 'X-Tenant': 'acme', 'X-Api-Key': { value: 'hdr-OLD-5678', sensitive: true } },
  oauth: { scopes: ['repo'] },
  resources: { cpu: '500m', memory: '256Mi' },
  access: { groups: ['eng'] },
};
/** A private key as a JWK whose text carries a marker the printed plan must never show. */
const clientKey = (marker: string): string => JSON.stringify({ ...generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }), note: marker });
const linear: Server = { type: 'remote', url: 'https://mcp.linear.app/mcp', headers: { Authorization: { value: 'Bearer lin-OLD-9', sensitive: true }, 'X-Team': 'core' } };
const combo: Server = { type: 'composite', components: [{ server: 'files', prefix: 'f_', tools: { include: ['read', 'write'] } }, { server: 'tool' }] };
const all = { files, tool, gh, linear, combo };

interface Case {
  readonly name: string;
  /** Servers already running; undefined: plan from nothing. */
  readonly from?: Record<string, Server>;
  readonly fromBackend?: BackendType;
  readonly to: Record<string, Server>;
  readonly toBackend?: BackendType;
  /** Turns the previous desired state into what a backend reports. */
  readonly observe?: (previous: DesiredState) => ObservedState;
  readonly expected: ReturnType<typeof summarize>;
}

const cases: readonly Case[] = [
  {
    name: 'create: every hosted server from nothing, every route added',
    to: all,
    expected: {
      actions: ['create files', 'create gh', 'create tool'],
      unitChanges: {},
      routes: ['add combo', 'add files', 'add gh', 'add linear', 'add tool'],
      routeChanges: {},
    },
  },
  {
    name: 'keep: the same config plans nothing',
    from: all,
    to: all,
    expected: { actions: ['keep files', 'keep gh', 'keep tool'], unitChanges: {}, routes: [], routeChanges: {} },
  },
  {
    name: 'delete: a removed server is stopped and its route removed',
    from: all,
    to: { files, gh, linear },
    expected: { actions: ['keep files', 'keep gh', 'delete tool'], unitChanges: {}, routes: ['remove combo', 'remove tool'], routeChanges: {} },
  },
  {
    name: 'replace: a version bump names the package change',
    from: { files },
    to: { files: { ...files, version: '2.0.0' } },
    expected: {
      actions: ['replace files'],
      unitChanges: { files: [{ path: 'package', from: '@acme/files@1.0.0', to: '@acme/files@2.0.0' }] },
      routes: [],
      routeChanges: {},
    },
  },
  {
    name: 'replace: args and command, listed in key order',
    from: { tool },
    to: { tool: { ...tool, command: '/opt/tool', args: ['--stdio', '-v'] } },
    expected: {
      actions: ['replace tool'],
      unitChanges: { tool: [{ path: 'args', from: '["--stdio"]', to: '["--stdio","-v"]' }, { path: 'command', from: '/usr/bin/tool', to: '/opt/tool' }] },
      routes: [],
      routeChanges: {},
    },
  },
  {
    name: 'replace: image and resources of a container',
    from: { gh },
    to: { gh: { ...gh, image: 'ghcr.io/acme/gh:v2', resources: { cpu: 1, memory: '256Mi' } } },
    expected: {
      actions: ['replace gh'],
      unitChanges: { gh: [{ path: 'image', from: 'ghcr.io/acme/gh:v1', to: 'ghcr.io/acme/gh:v2' }, { path: 'resources.cpu', from: '500m', to: '1' }] },
      routes: [],
      routeChanges: {},
    },
  },
  {
    name: 'replace: resources of a stdio server (run in a container on docker and kubernetes)',
    from: { files },
    to: { files: { ...files, resources: { memory: '1Gi' } } },
    expected: { actions: ['replace files'], unitChanges: { files: [{ path: 'resources.memory', to: '1Gi' }] }, routes: [], routeChanges: {} },
  },
  {
    name: 'scale: replicas change scales in place',
    from: { files },
    to: { files: { ...files, replicas: 3 } },
    expected: { actions: ['scale files 1→3'], unitChanges: {}, routes: [], routeChanges: {} },
  },
  {
    name: 'keep: a per-user unit has one instance per active user, whatever count the backend reports',
    from: { tool },
    to: { tool },
    observe: (previous) => ({ backend: 'docker', units: previous.units.map((u) => ({ ...u, replicas: 4 })), routes: previous.routes }),
    expected: { actions: ['keep tool'], unitChanges: {}, routes: [], routeChanges: {} },
  },
  {
    name: 'replace wins over scale when the spec changes too',
    from: { files },
    to: { files: { ...files, replicas: 3, args: [] } },
    expected: { actions: ['replace files'], unitChanges: { files: [{ path: 'args', from: '["stdio"]', to: '[]' }] }, routes: [], routeChanges: {} },
  },
  {
    name: 'backend change replaces every unit, routes stay',
    from: { files, gh },
    fromBackend: 'docker',
    to: { files, gh },
    toBackend: 'kubernetes',
    expected: {
      actions: ['replace files', 'replace gh'],
      unitChanges: { files: [{ path: 'backend', from: 'docker', to: 'kubernetes' }], gh: [{ path: 'backend', from: 'docker', to: 'kubernetes' }] },
      routes: [],
      routeChanges: {},
    },
  },
  {
    name: 'scope change (single-user ↔ multi-user) replaces the unit',
    from: { tool },
    to: { tool: { type: 'multi-user', runtime: 'command', command: '/usr/bin/tool', args: ['--stdio'] } },
    expected: {
      actions: ['replace tool'],
      unitChanges: { tool: [{ path: 'scope', from: 'per-user', to: 'shared' }] },
      routes: ['change tool'],
      routeChanges: { tool: [{ path: 'idleTimeoutMs', from: '900000' }, { path: 'maxInstances', from: '100' }, { path: 'scope', from: 'per-user', to: 'shared' }] },
    },
  },
  {
    name: 'a backend that reports only hashes: replace says which hash changed',
    from: { files },
    to: { files: { ...files, version: '2.0.0' } },
    observe: (previous) => ({ units: previous.units.map((u) => ({ name: u.name, specHash: 'aaaaaaaaaaaaaaaa', replicas: u.replicas })), routes: previous.routes }),
    expected: {
      actions: ['replace files'],
      unitChanges: { files: [{ path: 'specHash', from: 'aaaaaaaaaaaaaaaa', to: resolveDesiredState(load({ files: { ...files, version: '2.0.0' } })).units[0]?.specHash ?? '' }] },
      routes: [],
      routeChanges: {},
    },
  },
  {
    name: 'an orphan unit nobody declares is deleted',
    to: { files },
    observe: () => ({ units: [{ name: 'orphan', specHash: '0123456789abcdef', replicas: 1 }], routes: [] }),
    expected: { actions: ['create files', 'delete orphan'], unitChanges: {}, routes: ['add files'], routeChanges: {} },
  },
  {
    name: 'route only: a changed header never replaces',
    from: { gh },
    to: { gh: { ...gh, headers: { ...gh.headers, 'X-Tenant': 'globex' } } },
    expected: { actions: ['keep gh'], unitChanges: {}, routes: ['change gh'], routeChanges: { gh: [{ path: 'headers.values.X-Tenant', from: 'acme', to: 'globex' }] } },
  },
  {
    name: 'route only: access rules',
    from: { gh },
    to: { gh: { ...gh, access: { groups: ['eng', 'ops'] } } },
    expected: { actions: ['keep gh'], unitChanges: {}, routes: ['change gh'], routeChanges: { gh: [{ path: 'access.groups', from: '["eng"]', to: '["eng","ops"]' }] } },
  },
  {
    name: 'route only: description',
    from: { files },
    to: { files: { ...files, description: 'Shared files' } },
    expected: { actions: ['keep files'], unitChanges: {}, routes: ['change files'], routeChanges: { files: [{ path: 'description', to: 'Shared files' }] } },
  },
  {
    name: 'route only: idle timeout',
    from: { tool },
    to: { tool: { ...tool, idleTimeout: '1h' } },
    expected: { actions: ['keep tool'], unitChanges: {}, routes: ['change tool'], routeChanges: { tool: [{ path: 'idleTimeoutMs', from: '900000', to: '3600000' }] } },
  },
  {
    name: 'route only: OAuth scopes',
    from: { gh },
    to: { gh: { ...gh, oauth: { scopes: ['repo', 'read:org'] } } },
    expected: { actions: ['keep gh'], unitChanges: {}, routes: ['change gh'], routeChanges: { gh: [{ path: 'oauth.scopes', from: '["repo"]', to: '["repo","read:org"]' }] } },
  },
  {
    name: 'route only: tool curation of a composite',
    from: all,
    to: { ...all, combo: { type: 'composite', components: [{ server: 'files', prefix: 'f_', tools: { include: ['read'] } }, { server: 'tool' }] } },
    expected: {
      actions: ['keep files', 'keep gh', 'keep tool'],
      unitChanges: {},
      routes: ['change combo'],
      routeChanges: {
        combo: [
          {
            path: 'components[0].tools.include',
            from: '["read","write"]',
            to: '["read"]',
          },
        ],
      },
    },
  },
  {
    name: 'route only: a new remote server adds a route and no unit',
    from: { files },
    to: { files, linear },
    expected: { actions: ['keep files'], unitChanges: {}, routes: ['add linear'], routeChanges: {} },
  },
  {
    name: 'secret: URL credentials (userinfo, token parameters, args) show as REDACTED, the rest of the URL as written',
    from: { linear: { ...linear, url: 'https://bot:tok-PASS-1@mcp.linear.app/mcp?team=core&apikey=tok-KEY-1' }, tool },
    to: { linear: { ...linear, url: 'https://bot:tok-PASS-1@mcp.linear.app/mcp?team=core&apikey=tok-KEY-2' }, tool: { ...tool, args: ['--upstream', 'https://x.example.com/?access_token=tok-ARG-1'] } },
    expected: {
      actions: ['replace tool'],
      unitChanges: { tool: [{ path: 'args', from: '["--stdio"]', to: '["--upstream","https://x.example.com/?access_token=REDACTED"]' }] },
      routes: ['change linear'],
      routeChanges: { linear: [{ path: 'url', from: 'https://REDACTED:REDACTED@mcp.linear.app/mcp?team=core&apikey=REDACTED', to: 'https://REDACTED:REDACTED@mcp.linear.app/mcp?team=core&apikey=REDACTED' }] },
    },
  },
  {
    name: 'secret: a changed env value shows (secret), never the value',
    from: { files },
    to: { files: { ...files, env: { API_TOKEN: 'tok-NEW-4321', LOG_LEVEL: 'info' } } },
    expected: { actions: ['replace files'], unitChanges: { files: [{ path: 'env.values.API_TOKEN', secret: true, from: '(secret)', to: '(secret)' }] }, routes: [], routeChanges: {} },
  },
  {
    name: 'secret: env values are secret even when not marked sensitive, added or removed',
    from: { files },
    to: { files: { ...files, env: { API_TOKEN: 'tok-OLD-1234', EXTRA: 'env-NEW-1' } } },
    expected: {
      actions: ['replace files'],
      unitChanges: { files: [{ path: 'env.values.EXTRA', secret: true, to: '(secret)' }, { path: 'env.values.LOG_LEVEL', secret: true, from: '(secret)' }] },
      routes: [],
      routeChanges: {},
    },
  },
  {
    name: 'secret: a sensitive header shows (secret), a plain one its value',
    from: { linear },
    to: { linear: { ...linear, headers: { Authorization: { value: 'Bearer lin-NEW-9', sensitive: true }, 'X-Team': 'edge' } } },
    expected: {
      actions: [],
      unitChanges: {},
      routes: ['change linear'],
      routeChanges: { linear: [{ path: 'headers.values.Authorization', secret: true, from: '(secret)', to: '(secret)' }, { path: 'headers.values.X-Team', from: 'core', to: 'edge' }] },
    },
  },
  {
    name: 'secret: a header that becomes sensitive hides its old value too',
    from: { linear },
    to: { linear: { ...linear, headers: { ...linear.headers, 'X-Team': { value: 'hdr-NEW-core', sensitive: true } } } },
    expected: {
      actions: [],
      unitChanges: {},
      routes: ['change linear'],
      routeChanges: {
        linear: [
          { path: 'headers.sensitive', from: '["Authorization"]', to: '["Authorization","X-Team"]' },
          { path: 'headers.values.X-Team', secret: true, from: '(secret)', to: '(secret)' },
        ],
      },
    },
  },
  {
    name: 'secret: an OAuth client secret added with its block stays hidden',
    from: { linear },
    to: { linear: { ...linear, oauth: { clientId: 'berth', clientSecret: 'oauth-NEW-77' } } },
    expected: {
      actions: [],
      unitChanges: {},
      routes: ['change linear'],
      routeChanges: {
        linear: [
          { path: 'oauth.allowPrivateNetworks', to: 'false' },
          { path: 'oauth.clientId', to: 'berth' },
          { path: 'oauth.clientSecret', secret: true, to: '(secret)' },
          { path: 'oauth.perUser', to: 'true' },
          { path: 'oauth.scopes', to: '[]' },
        ],
      },
    },
  },
  {
    name: 'secret: an OAuth private key stays hidden; its kid does not',
    from: { linear: { ...linear, oauth: { clientId: 'berth', tokenEndpointAuthMethod: 'private_key_jwt', privateKey: { key: clientKey('oauth-OLD-key'), kid: 'k1' } } } },
    to: { linear: { ...linear, oauth: { clientId: 'berth', tokenEndpointAuthMethod: 'private_key_jwt', privateKey: { key: clientKey('oauth-NEW-key'), kid: 'k2' } } } },
    expected: {
      actions: [],
      unitChanges: {},
      routes: ['change linear'],
      routeChanges: {
        linear: [
          { path: 'oauth.privateKey.key', secret: true, from: '(secret)', to: '(secret)' },
          { path: 'oauth.privateKey.kid', from: 'k1', to: 'k2' },
        ],
      },
    },
  },
];

/** Every value the cases above treat as secret; none may be printed. */
const SECRET_VALUES = /tok-|hdr-|lin-|env-|oauth-/;

describe('planChanges', () => {
  for (const c of cases) {
    it(c.name, () => {
      const next = desired(c.to, c.toBackend);
      const previous = c.from === undefined ? undefined : desired(c.from, c.fromBackend);
      const observed = c.observe !== undefined ? c.observe(previous ?? { backend: 'docker', units: [], routes: [] }) : (previous ?? NOTHING);
      const plan = planChanges(next, observed);
      assert.deepEqual(summarize(plan), c.expected);
      assert.equal(hasChanges(plan), c.expected.actions.some((a) => !a.startsWith('keep')) || c.expected.routes.length > 0);
      assert.doesNotMatch(JSON.stringify(summarize(plan)), SECRET_VALUES, 'a field change carries a secret');
      assert.doesNotMatch(JSON.stringify(redactPlan(plan)), SECRET_VALUES, 'the redacted plan carries a secret');
      assert.doesNotMatch(renderPlan(plan, 'next.yaml', 'prev.yaml', process.stdout), SECRET_VALUES, 'the printed plan carries a secret');
    });
  }

  it('the case table covers every action and route change kind', () => {
    const seen = new Set(cases.flatMap((c) => [...c.expected.actions, ...c.expected.routes].map((line) => line.split(' ')[0])));
    assert.deepEqual([...seen].sort(), ['add', 'change', 'create', 'delete', 'keep', 'remove', 'replace', 'scale']);
  });

  it('the secret pattern matches the plan before redaction (so the checks above can fail)', () => {
    const plan = planChanges(desired({ files, linear }), NOTHING);
    assert.match(JSON.stringify(plan), SECRET_VALUES);
  });
});

// ---- properties -----------------------------------------------------------

const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'] as const;
const TOOLS: readonly string[] = ['echo', 'add', 'search'];
const SECRET = 'SECRET-';

const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** Env values are all secret; header values only when marked sensitive. */
const envValue = fc.oneof(fc.constantFrom(`${SECRET}e1`, `${SECRET}e2`), fc.record({ value: fc.constantFrom(`${SECRET}e1`, `${SECRET}e3`), sensitive: fc.boolean() }));
const headerValue = fc.oneof(fc.constantFrom('plain-a', 'plain-b', 1, true), fc.record({ value: fc.constantFrom(`${SECRET}h1`, `${SECRET}h2`), sensitive: fc.constant(true) }));
const fromUser = fc.record({ fromUser: fc.constant(true as const), sensitive: opt(fc.boolean()), required: opt(fc.boolean()), description: opt(fc.constantFrom('Your token', 'Key')) });
const settings = (names: readonly string[], value: fc.Arbitrary<Credential>) =>
  fc.dictionary(fc.constantFrom(...names), fc.oneof({ arbitrary: value, weight: 3 }, { arbitrary: fromUser, weight: 1 }), { maxKeys: 3 });

const access: fc.Arbitrary<Access> = fc.record({ users: fc.subarray(['alice', 'bob'], { minLength: 1 }), groups: opt(fc.subarray(['eng', 'ops'])) });
const oauth: fc.Arbitrary<Oauth> = fc.record(
  {
    scopes: fc.subarray(['read', 'write']),
    clientId: fc.constantFrom('berth', 'other'),
    clientSecret: fc.constantFrom(`${SECRET}o1`, `${SECRET}o2`),
    tokenEndpointAuthMethod: fc.constantFrom('none', 'client_secret_basic', 'client_secret_post'),
    perUser: fc.boolean(),
    authorizationServer: fc.constant('https://auth.example.com'),
  },
  { requiredKeys: [] },
);
const resources: fc.Arbitrary<Resources> = fc.record({ cpu: fc.constantFrom('500m', 1, '0.5'), memory: fc.constantFrom('256Mi', '1Gi') }, { requiredKeys: [] });
const tools = fc.record({ include: opt(fc.subarray([...TOOLS], { minLength: 1 })), exclude: opt(fc.subarray([...TOOLS])), rename: fc.subarray([...TOOLS]), descriptions: fc.subarray([...TOOLS]) });

/** Every field any server may have; `toServer` keeps those that fit its type and runtime. */
const draft = fc.record({
  type: fc.constantFrom('single-user', 'multi-user', 'remote', 'composite'),
  runtime: fc.constantFrom('npx', 'uvx', 'command', 'container'),
  description: opt(fc.constantFrom('one', 'two')),
  access: opt(access),
  package: fc.constantFrom('pkg-a', '@scope/pkg-b'),
  version: opt(fc.constantFrom('1.0.0', '2.0.0')),
  command: fc.constantFrom('node', '/usr/bin/tool'),
  cwd: opt(fc.constantFrom('.', 'work')),
  args: fc.constantFrom<string[]>([], ['stdio'], ['--verbose', 'stdio']),
  image: fc.constantFrom('img:v1', 'img:v2'),
  port: fc.constantFrom(8080, 3000),
  path: opt(fc.constantFrom('/mcp', '/sse')),
  transport: opt(fc.constantFrom('streamable-http', 'sse')),
  publish: fc.boolean(),
  url: fc.constantFrom('https://a.example.com/mcp', 'http://127.0.0.1:9/mcp'),
  env: settings(['TOKEN', 'LOG_LEVEL', 'MODE'], envValue),
  headers: settings(['Authorization', 'X-Tenant'], headerValue),
  oauth: opt(oauth),
  resources: opt(resources),
  replicas: opt(fc.constantFrom(1, 2, 3)),
  idleTimeout: opt(fc.constantFrom('30s', '15m', '1h')),
  components: fc.array(fc.record({ pick: fc.nat(), tools: opt(tools) }), { minLength: 1, maxLength: 3 }),
});
type Draft = typeof draft extends fc.Arbitrary<infer T> ? T : never;

/** A draft as a valid server. Composites use servers earlier in NAMES, so there are no cycles. */
function toServer(d: Draft, name: string, earlier: readonly string[], backend: BackendType): Server {
  const common = { description: d.description, access: d.access };
  if (d.type === 'composite' && earlier.length > 0) {
    const components = d.components.map(({ pick, tools: t }, k): Component => {
      if (t === undefined) return { server: earlier[pick % earlier.length] ?? '', prefix: `p${k}_` };
      const curated = (tool: string) => (t.include === undefined || t.include.includes(tool)) && !(t.exclude ?? []).includes(tool);
      return {
        server: earlier[pick % earlier.length] ?? '',
        prefix: `p${k}_`,
        tools: {
          include: t.include,
          exclude: t.exclude,
          rename: Object.fromEntries(t.rename.filter(curated).map((tool) => [tool, `${tool}_2`])),
          descriptions: Object.fromEntries(t.descriptions.filter(curated).map((tool) => [tool, `About ${tool}`])),
        },
      };
    });
    return { type: 'composite', ...common, components };
  }
  if (d.type === 'remote' || d.type === 'composite') return { type: 'remote', ...common, url: d.url, transport: d.transport, headers: d.headers, oauth: d.oauth };
  const runtime = d.runtime === 'container' && backend === 'local' ? 'npx' : d.runtime;
  // One shared process cannot take a per-user environment.
  const env = d.type === 'multi-user' ? Object.fromEntries(Object.entries(d.env).filter(([, v]) => !(typeof v === 'object' && v.fromUser === true))) : d.env;
  const hosted = { type: d.type, runtime, ...common, resources: d.resources, ...(d.type === 'single-user' ? { idleTimeout: d.idleTimeout } : { replicas: d.replicas }) };
  switch (runtime) {
    case 'npx':
    case 'uvx':
      return { ...hosted, package: d.package, version: d.version, args: d.args, env };
    case 'command':
      return { ...hosted, command: d.command, cwd: d.cwd, args: d.args, env };
    case 'container': {
      const publishPort = d.publish ? 20000 + NAMES.indexOf(name as (typeof NAMES)[number]) : undefined;
      return { ...hosted, image: d.image, port: d.port, path: d.path, transport: d.transport, publishPort, args: d.args, env, headers: d.headers, oauth: d.oauth };
    }
  }
}

function toConfig(backend: BackendType, drafts: readonly (Draft | undefined)[]): LoadedConfig {
  const servers: Record<string, Server> = {};
  NAMES.forEach((name, i) => {
    const d = drafts[i];
    if (d !== undefined) servers[name] = toServer(d, name, Object.keys(servers), backend);
  });
  return load(servers, backend);
}

const backendArb = fc.constantFrom<BackendType>('local', 'docker', 'kubernetes');
const drafts = fc.array(opt(draft), { minLength: NAMES.length, maxLength: NAMES.length });

/**
 * Two configs over the same names, often sharing servers, and what a backend
 * reports for the older one: with or without specs and backend, drifted
 * replicas, orphans.
 */
const world = fc
  .record({
    backendBefore: backendArb,
    backendAfter: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: backendArb, weight: 1 }),
    before: drafts,
    after: drafts,
    same: fc.array(fc.boolean(), { minLength: NAMES.length, maxLength: NAMES.length }),
    specKnown: fc.boolean(),
    backendKnown: fc.boolean(),
    replicas: fc.array(opt(fc.nat({ max: 3 })), { minLength: NAMES.length, maxLength: NAMES.length }),
    orphan: fc.boolean(),
  })
  .map((w) => {
    const previous = resolveDesiredState(toConfig(w.backendBefore, w.before));
    const next = resolveDesiredState(toConfig(w.backendAfter ?? w.backendBefore, w.after.map((d, i) => (w.same[i] === true ? w.before[i] : d))));
    const units: ObservedUnit[] = previous.units.map((u, i) => ({
      name: u.name,
      specHash: u.specHash,
      replicas: w.replicas[i] ?? u.replicas,
      ...(w.specKnown ? { spec: u.spec, scope: u.scope } : {}),
    }));
    if (w.orphan) units.push({ name: 'orphan', specHash: 'ffffffffffffffff', replicas: 1 });
    const observed: ObservedState = { ...(w.backendKnown ? { backend: previous.backend } : {}), units, routes: previous.routes };
    return { next, observed };
  });

/** Everything a field change, the redacted plan and the printed plan say; none of it may hold a secret. */
function printed(plan: Plan): string {
  const changes = [...plan.actions.flatMap((a) => (a.kind === 'replace' ? a.changes : [])), ...plan.routes.flatMap((r) => (r.kind === 'change' ? r.changes : []))];
  return [JSON.stringify(changes), JSON.stringify(redactPlan(plan)), renderPlan(plan, 'next.yaml', 'prev.yaml', process.stdout)].join('\n');
}

function shuffled<T>(gen: fc.GeneratorValue, items: readonly T[]): T[] {
  return gen(fc.shuffledSubarray, [...items], { minLength: items.length, maxLength: items.length });
}

describe('planChanges properties', () => {
  it('planning against the state the plan reaches yields no changes', () => {
    fc.assert(
      fc.property(world, ({ next, observed }) => {
        const plan = planChanges(next, observed);
        const again = planChanges(next, observedAfter(plan, next));
        assert.equal(hasChanges(again), false, JSON.stringify(summarize(again)));
        assert.deepEqual(
          again.actions.map((a) => `${a.kind} ${a.unit.name}`),
          next.units.map((u) => `keep ${u.name}`),
        );
      }),
    );
  });

  it('input order never changes the plan', () => {
    fc.assert(
      fc.property(world, fc.gen(), ({ next, observed }, gen) => {
        const reordered = planChanges(
          { ...next, units: shuffled(gen, next.units), routes: shuffled(gen, next.routes) },
          { ...observed, units: shuffled(gen, observed.units), routes: shuffled(gen, observed.routes) },
        );
        assert.deepEqual(reordered, planChanges(next, observed));
      }),
    );
  });

  it('the same world plans nothing, whether or not the backend reports specs', () => {
    fc.assert(
      fc.property(world, ({ next }) => {
        assert.equal(hasChanges(planChanges(next, next)), false);
        const hashesOnly: ObservedState = { units: next.units.map((u) => ({ name: u.name, specHash: u.specHash, replicas: u.replicas })), routes: next.routes };
        assert.equal(hasChanges(planChanges(next, hashesOnly)), false);
      }),
    );
  });

  it('planning from nothing creates every unit and adds every route', () => {
    fc.assert(
      fc.property(world, ({ next }) => {
        const plan = planChanges(next, NOTHING);
        assert.deepEqual(
          plan.actions.map((a) => `${a.kind} ${a.unit.name}`),
          next.units.map((u) => `create ${u.name}`),
        );
        assert.deepEqual(
          plan.routes.map((r) => `${r.kind} ${r.route.server}`),
          next.routes.map((r) => `add ${r.server}`),
        );
      }),
    );
  });

  it('one action per unit in desired ∪ observed, sorted by name', () => {
    fc.assert(
      fc.property(world, ({ next, observed }) => {
        const expected = [...new Set([...next.units.map((u) => u.name), ...observed.units.map((u) => u.name)])].sort();
        assert.deepEqual(
          planChanges(next, observed).actions.map((a) => a.unit.name),
          expected,
        );
      }),
    );
  });

  it('secret values never appear in field changes, the redacted plan or the printed plan', () => {
    let secretsSeen = 0;
    fc.assert(
      fc.property(world, ({ next, observed }) => {
        const plan = planChanges(next, observed);
        if (JSON.stringify(plan).includes(SECRET)) secretsSeen++;
        assert.ok(!printed(plan).includes(SECRET), printed(plan));
      }),
    );
    assert.ok(secretsSeen > 10, `only ${secretsSeen} generated plans held a secret; the property tests little`);
  });

  it('generated worlds reach every kind of action', () => {
    const kinds = new Set<string>();
    fc.assert(
      fc.property(world, ({ next, observed }) => {
        const plan = planChanges(next, observed);
        for (const a of plan.actions) kinds.add(a.kind);
        for (const r of plan.routes) kinds.add(r.kind);
      }),
      { numRuns: 300 },
    );
    assert.deepEqual([...kinds].sort(), ['add', 'change', 'create', 'delete', 'keep', 'remove', 'replace', 'scale']);
  });
});
