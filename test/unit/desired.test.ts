import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import type { BerthConfiguration, Server } from '../../src/config/types.gen.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import type { DesiredState } from '../../src/desired/types.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

function resolveText(text: string, file = 'test.yaml'): DesiredState {
  const result = parseConfig(file, text, { env: {}, readFile: () => assert.fail('no file references expected'), baseDir: root });
  if (!result.ok) assert.fail(`config is invalid:\n${result.issues.map((i) => `${i.line}:${i.col} ${i.path}: ${i.message}`).join('\n')}`);
  return resolveDesiredState(result.value);
}

function hashes(state: DesiredState): Record<string, string> {
  return Object.fromEntries(state.units.map((u) => [u.name, u.specHash]));
}

describe('specHash is stable under how the file is written', () => {
  const block = `version: 1
backend:
  type: docker
auth:
  - type: jwt
    issuer: https://idp.example.com
servers:
  files:
    type: multi-user
    runtime: npx
    package: "@acme/files"
    version: "1.2.0"
    args:
      - stdio
      - --root=/data
    env:
      LOG_LEVEL: info
      API_TOKEN: abc
    resources:
      cpu: 500m
      memory: 256Mi
  gh:
    type: single-user
    runtime: container
    image: ghcr.io/acme/gh:v1
    port: 8080
    env:
      TOKEN:
        fromUser: true
        sensitive: true
    headers:
      X-Tenant: acme
`;
  const variants: readonly { name: string; text: string }[] = [
    {
      name: 'keys in another order, at every level',
      text: `servers:
  gh:
    headers: { X-Tenant: acme }
    env:
      TOKEN: { sensitive: true, fromUser: true }
    port: 8080
    image: ghcr.io/acme/gh:v1
    runtime: container
    type: single-user
  files:
    resources: { memory: 256Mi, cpu: 500m }
    env: { API_TOKEN: abc, LOG_LEVEL: info }
    args: [stdio, --root=/data]
    version: "1.2.0"
    package: "@acme/files"
    runtime: npx
    type: multi-user
auth: [{ issuer: https://idp.example.com, type: jwt }]
backend: { type: docker }
version: 1
`,
    },
    {
      name: 'comments and blank lines',
      text: block
        .split('\n')
        .map((line) => (line.trim() === '' ? line : `${line}   # note`))
        .join('\n\n')
        .replace(/^/, '# yaml-language-server: $schema=../schemas/berth.schema.json\n# a comment\n'),
    },
    {
      name: 'flow style throughout',
      text: `{ version: 1, backend: { type: docker }, auth: [{ type: jwt, issuer: "https://idp.example.com" }], servers: {
  files: { type: multi-user, runtime: npx, package: "@acme/files", version: "1.2.0", args: [stdio, --root=/data], env: { LOG_LEVEL: info, API_TOKEN: abc }, resources: { cpu: 500m, memory: 256Mi } },
  gh: { type: single-user, runtime: container, image: ghcr.io/acme/gh:v1, port: 8080, env: { TOKEN: { fromUser: true, sensitive: true } }, headers: { X-Tenant: acme } } } }
`,
    },
    {
      name: 'quoting: plain, single and double quotes',
      text: block
        .replace('runtime: npx', "runtime: 'npx'")
        .replace('"@acme/files"', "'@acme/files'")
        .replace('- stdio', '- "stdio"')
        .replace('LOG_LEVEL: info', "LOG_LEVEL: 'info'")
        .replace('image: ghcr.io/acme/gh:v1', 'image: "ghcr.io/acme/gh:v1"')
        .replace('memory: 256Mi', 'memory: "256Mi"'),
    },
    { name: 'JSON (YAML is a superset)', text: JSON.stringify(parse(block)) },
    { name: 'a version written into the package', text: block.replace('package: "@acme/files"\n    version: "1.2.0"', 'package: "@acme/files@1.2.0"') },
  ];

  const expected = resolveText(block);
  it('the reference config has both units', () => assert.deepEqual(Object.keys(hashes(expected)), ['files', 'gh']));
  for (const v of variants) {
    it(v.name, () => {
      assert.notEqual(v.text, block);
      const actual = resolveText(v.text);
      assert.deepEqual(hashes(actual), hashes(expected));
      assert.deepEqual(actual, expected);
    });
  }

  it('hashSpec ignores key order', () => {
    assert.equal(hashSpec({ a: 1, b: { c: [1, 2], d: 'x' } }), hashSpec({ b: { d: 'x', c: [1, 2] }, a: 1 }));
    assert.notEqual(hashSpec({ a: [1, 2] }), hashSpec({ a: [2, 1] }));
  });
});

describe('specHash changes exactly when a restart is needed', () => {
  const base: BerthConfiguration = {
    version: 1,
    backend: { type: 'docker' },
    auth: [{ type: 'jwt', issuer: 'https://idp.example.com' }],
    servers: {
      files: { type: 'multi-user', runtime: 'npx', package: '@acme/files', version: '1.0.0', args: ['stdio'], env: { LOG_LEVEL: 'info' }, replicas: 1, description: 'Files' },
      fetch: { type: 'multi-user', runtime: 'uvx', package: 'mcp-server-fetch', args: [] },
      tool: { type: 'single-user', runtime: 'command', command: '/usr/bin/tool', args: ['--stdio'], cwd: '.', idleTimeout: '15m', access: { users: ['alice'] } },
      gh: {
        type: 'multi-user',
        runtime: 'container',
        image: 'ghcr.io/acme/gh:v1',
        port: 8080,
        env: { TOKEN: { value: 'secret-1', sensitive: true } },
        headers: { 'X-Tenant': 'acme' },
        oauth: { scopes: ['repo'] },
        resources: { cpu: '500m', memory: '256Mi' },
        access: { groups: ['eng'] },
      },
      combo: { type: 'composite', components: [{ server: 'files', tools: { include: ['read'] } }, { server: 'gh', prefix: 'gh_' }] },
    },
  };

  type Edit = (servers: Record<string, Server>, config: BerthConfiguration) => void;
  const variant = (edit: Edit): DesiredState => {
    const config = structuredClone(base) as BerthConfiguration & { servers: Record<string, Server> };
    edit(config.servers, config);
    return resolveText(stringify(config));
  };
  const server = (servers: Record<string, Server>, name: string): Server => servers[name] ?? assert.fail(`no server ${name}`);
  const before = resolveText(stringify(base));

  const restarts: readonly { name: string; unit: string; edit: Edit }[] = [
    { name: 'package', unit: 'files', edit: (s) => void (server(s, 'files').package = '@acme/files-ng') },
    { name: 'version', unit: 'files', edit: (s) => void (server(s, 'files').version = '1.0.1') },
    { name: 'uvx package', unit: 'fetch', edit: (s) => void (server(s, 'fetch').package = 'mcp-server-time') },
    { name: 'args', unit: 'files', edit: (s) => void (server(s, 'files').args = ['stdio', '--debug']) },
    { name: 'args order', unit: 'tool', edit: (s) => void (server(s, 'tool').args = ['--stdio', '-v']) },
    { name: 'env value', unit: 'files', edit: (s) => void (server(s, 'files').env = { LOG_LEVEL: 'debug' }) },
    { name: 'env added', unit: 'fetch', edit: (s) => void (server(s, 'fetch').env = { PROXY: 'http://proxy:3128' }) },
    { name: 'secret env value', unit: 'gh', edit: (s) => void (server(s, 'gh').env = { TOKEN: { value: 'secret-2', sensitive: true } }) },
    { name: 'command', unit: 'tool', edit: (s) => void (server(s, 'tool').command = '/opt/tool') },
    { name: 'cwd', unit: 'tool', edit: (s) => void (server(s, 'tool').cwd = 'work') },
    { name: 'image', unit: 'gh', edit: (s) => void (server(s, 'gh').image = 'ghcr.io/acme/gh:v2') },
    { name: 'port', unit: 'gh', edit: (s) => void (server(s, 'gh').port = 9090) },
    { name: 'container path', unit: 'gh', edit: (s) => void (server(s, 'gh').path = '/v2/mcp') },
    { name: 'publishPort', unit: 'gh', edit: (s) => void (server(s, 'gh').publishPort = 9101) },
    { name: 'resources.cpu', unit: 'gh', edit: (s) => void (server(s, 'gh').resources = { cpu: '1', memory: '256Mi' }) },
    { name: 'resources.memory', unit: 'gh', edit: (s) => void (server(s, 'gh').resources = { cpu: '500m', memory: '1Gi' }) },
    { name: 'resources of a stdio server', unit: 'files', edit: (s) => void (server(s, 'files').resources = { memory: '1Gi' }) },
    { name: 'backend type', unit: 'files', edit: (_s, c) => void (c.backend = { type: 'kubernetes' }) },
    { name: 'scope (multi-user → single-user)', unit: 'fetch', edit: (s) => void (server(s, 'fetch').type = 'single-user') },
  ];
  for (const r of restarts) {
    it(`changes with ${r.name}`, () => {
      const after = variant(r.edit);
      assert.notEqual(hashes(after)[r.unit], hashes(before)[r.unit]);
      // Only the edited unit changes (the backend moves every unit).
      const others = (state: DesiredState) => Object.entries(hashes(state)).filter(([name]) => name !== r.unit && r.name !== 'backend type');
      assert.deepEqual(others(after), others(before));
    });
  }

  const routeOnly: readonly { name: string; server: string; edit: Edit }[] = [
    { name: 'headers', server: 'gh', edit: (s) => void (server(s, 'gh').headers = { 'X-Tenant': 'globex' }) },
    { name: 'access', server: 'gh', edit: (s) => void (server(s, 'gh').access = { groups: ['eng', 'ops'] }) },
    { name: 'description', server: 'files', edit: (s) => void (server(s, 'files').description = 'Shared files') },
    { name: 'idleTimeout', server: 'tool', edit: (s) => void (server(s, 'tool').idleTimeout = '1h') },
    { name: 'oauth', server: 'gh', edit: (s) => void (server(s, 'gh').oauth = { scopes: ['repo', 'read:org'], perUser: false }) },
    { name: 'components', server: 'combo', edit: (s) => void (server(s, 'combo').components = [{ server: 'files', prefix: 'f_', tools: { include: ['read', 'write'] } }]) },
  ];
  for (const r of routeOnly) {
    it(`does not change with ${r.name}, which changes only the route`, () => {
      const after = variant(r.edit);
      assert.deepEqual(hashes(after), hashes(before));
      assert.notDeepEqual(
        after.routes.find((route) => route.server === r.server),
        before.routes.find((route) => route.server === r.server),
        'the edit must change the route, or this case tests nothing',
      );
    });
  }

  it('does not change with replicas, which scale in place', () => {
    const after = variant((s) => void (server(s, 'files').replicas = 3));
    assert.deepEqual(hashes(after), hashes(before));
    assert.equal(after.units.find((u) => u.name === 'files')?.replicas, 3);
  });
});

describe('golden: config.example.yaml', () => {
  const golden = path.join(root, 'test/fixtures/desired/example.json');

  it('resolves to test/fixtures/desired/example.json (UPDATE_GOLDEN=1 rewrites it)', () => {
    const actual = `${JSON.stringify(resolveText(readFileSync(path.join(root, 'config.example.yaml'), 'utf8'), 'config.example.yaml'), null, 2)}\n`;
    if (process.env['UPDATE_GOLDEN'] === '1') {
      mkdirSync(path.dirname(golden), { recursive: true });
      writeFileSync(golden, actual);
    }
    // Parsed, so field order in the resolver does not matter; specHash values pin the hashing.
    assert.deepEqual(JSON.parse(actual), JSON.parse(readFileSync(golden, 'utf8')), 'the desired state of config.example.yaml changed; if intended, run UPDATE_GOLDEN=1 node --test test/unit/desired.test.ts');
  });
});
