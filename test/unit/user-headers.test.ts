// Per-user header values: the template syntax (with its escapes, through
// load-time interpolation), rendering, and the resolver over a real
// credential store in a temp dir.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { interpolate } from '../../src/config/interpolate.ts';
import { parseSource } from '../../src/config/source.ts';
import type { TemplatePart } from '../../src/config/user-template.ts';
import { parseHeaderValue, renderTemplate } from '../../src/config/user-template.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import { redactRoute } from '../../src/reconcile/plan.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { silentLogger } from '../../src/observe/log.ts';
import type { HeaderRoute } from '../../src/proxy/upstream/user-headers.ts';
import { UserHeaderResolver } from '../../src/proxy/upstream/user-headers.ts';
import { CredentialStore } from '../../src/store/credentials.ts';
import { StateStore } from '../../src/store/state.ts';

describe('header templates', () => {
  const cases: readonly { name: string; text: string; want: ReturnType<typeof parseHeaderValue> }[] = [
    { name: 'plain text', text: 'berth', want: { kind: 'static', value: 'berth' } },
    { name: 'one credential', text: '${user.credentials.KEY}', want: { kind: 'template', parts: [{ credential: 'KEY' }] } },
    { name: 'text around credentials', text: 'Bearer ${user.credentials.A}:${user.credentials.B}!', want: { kind: 'template', parts: ['Bearer ', { credential: 'A' }, ':', { credential: 'B' }, '!'] } },
    { name: 'an escaped reference is text', text: '$${user.credentials.KEY}', want: { kind: 'static', value: '${user.credentials.KEY}' } },
    { name: 'an escape beside a reference', text: '$${user.x} ${user.credentials.K}', want: { kind: 'template', parts: ['${user.x} ', { credential: 'K' }] } },
    { name: 'other `$${` stays as it is', text: '$${env:X}', want: { kind: 'static', value: '$${env:X}' } },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(parseHeaderValue(c.text), c.want));

  test('renders with the values, and not at all when one is missing', () => {
    const parts: TemplatePart[] = ['Bearer ', { credential: 'KEY' }];
    assert.equal(renderTemplate(parts, { KEY: 's3cret' }), 'Bearer s3cret');
    assert.equal(renderTemplate(parts, {}), undefined);
    assert.equal(renderTemplate(parts, Object.create({ KEY: 'inherited' }) as Record<string, string>), undefined);
  });

  test('interpolation keeps references and escapes in headers, and never turns an expanded value into one', () => {
    const yaml = [
      'servers:',
      '  s:',
      '    headers:',
      '      A: "Bearer ${user.credentials.KEY}"',
      '      B: "$${user.credentials.KEY}"',
      '      C: "${env:TRICK}"',
      '      D: { value: "${user.credentials.KEY}" }',
      '    args: ["$${user.credentials.KEY}"]',
    ].join('\n');
    const { source } = parseSource('t.yaml', yaml);
    const issues = interpolate(source, { env: { TRICK: '${user.credentials.KEY}' }, readFile: () => '', baseDir: '/' });
    assert.deepEqual(issues, []);
    const s = (source.doc.toJS() as { servers: { s: { headers: Record<string, unknown>; args: string[] } } }).servers.s;
    assert.deepEqual(parseHeaderValue(s.headers['A'] as string), { kind: 'template', parts: ['Bearer ', { credential: 'KEY' }] });
    assert.deepEqual(parseHeaderValue(s.headers['B'] as string), { kind: 'static', value: '${user.credentials.KEY}' });
    assert.deepEqual(parseHeaderValue(s.headers['C'] as string), { kind: 'static', value: '${user.credentials.KEY}' }, 'an env value is text');
    assert.deepEqual(s.headers['D'], { value: '${user.credentials.KEY}' });
    assert.deepEqual(s.args, ['${user.credentials.KEY}'], 'outside headers `$${` is a literal `${` as ever');
  });

  test('the desired state carries templates, fixed values and the fields /connect asks for', () => {
    const desired = resolveDesiredState(loadConfigFile(path.join(import.meta.dirname, '../fixtures/valid/user-headers.yaml')));
    const search = desired.routes.find((r) => r.server === 'search');
    assert.ok(search?.kind === 'hosted');
    assert.deepEqual(search.headers.values, { 'X-Client': 'berth', 'X-Literal': '${user.credentials.API_KEY} is not a reference' });
    assert.deepEqual(search.userHeaders, { Authorization: ['Bearer ', { credential: 'API_KEY' }], 'X-Team': [{ credential: 'TEAM' }] });
    assert.deepEqual(search.credentials, [
      { name: 'API_KEY', required: true, sensitive: true, description: 'Your search API key' },
      { name: 'TEAM', required: false, sensitive: false, description: 'Team to bill' },
    ]);
  });
});

test('status and plans show templates with credential names; fixed text in a secret header shows as (secret)', () => {
  const route: HeaderRoute = {
    server: 'search',
    kind: 'remote',
    url: 'http://127.0.0.1:1/mcp',
    transport: 'streamable-http',
    headers: { values: {}, sensitive: ['X-Sealed'], fromUser: [] },
    userHeaders: {
      Authorization: ['Bearer ', { credential: 'KEY' }],
      'X-Api-Key': ['org-s3cret:', { credential: 'KEY' }],
      'X-Sealed': ['tenant-7/', { credential: 'KEY' }],
      'X-Team': ['team-', { credential: 'TEAM' }],
    },
  };
  assert.deepEqual((redactRoute(route) as HeaderRoute).userHeaders, {
    Authorization: ['Bearer ', { credential: 'KEY' }],
    'X-Api-Key': ['(secret)', { credential: 'KEY' }],
    'X-Sealed': ['(secret)', { credential: 'KEY' }],
    'X-Team': ['team-', { credential: 'TEAM' }],
  });
});

describe('the per-user header resolver', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-user-headers-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const route: HeaderRoute = {
    server: 'search',
    kind: 'remote',
    url: 'http://127.0.0.1:1/mcp',
    transport: 'streamable-http',
    headers: { values: { 'X-Client': 'berth' }, sensitive: [], fromUser: [{ name: 'X-Raw', required: false, sensitive: true }] },
    userHeaders: { Authorization: ['Bearer ', { credential: 'API_KEY' }], 'X-Team': [{ credential: 'TEAM' }], 'X-Raw': [{ credential: 'X-Raw' }] },
    credentials: [
      { name: 'API_KEY', required: true, sensitive: true },
      { name: 'TEAM', required: false, sensitive: false },
    ],
  };

  test('fills each user\'s own values, leaves out optional ones, refuses missing or unusable ones, and sees changes', async () => {
    const store = new CredentialStore(await StateStore.open({ path: path.join(dir, 'state.json'), keys: ['a-unit-test-state-key-of-32-characters'] }), silentLogger());
    const resolver = new UserHeaderResolver(store);
    await assert.rejects(resolver.headersFor(route, 'alice'), (err: Error & { missing?: unknown }) => {
      assert.deepEqual(err.missing, { server: 'search', names: ['API_KEY'] });
      return true;
    });
    await store.set('alice', 'search', { API_KEY: { value: 'alice-key', sensitive: true } });
    await store.set('bob', 'search', { API_KEY: { value: 'bob-key', sensitive: true }, TEAM: { value: 'blue', sensitive: false } });
    assert.deepEqual(await resolver.headersFor(route, 'alice'), { 'X-Client': 'berth', Authorization: 'Bearer alice-key' });
    assert.deepEqual(await resolver.headersFor(route, 'bob'), { 'X-Client': 'berth', Authorization: 'Bearer bob-key', 'X-Team': 'blue' });
    await store.set('alice', 'search', { API_KEY: { value: 'alice-key-2', sensitive: true } });
    assert.equal((await resolver.headersFor(route, 'alice'))['Authorization'], 'Bearer alice-key-2', 'a saved change is seen at once');
    await store.set('alice', 'search', { API_KEY: { value: 'line\r\nX-Injected: yes', sensitive: true } });
    await assert.rejects(resolver.headersFor(route, 'alice'), /needs credentials you have not supplied: API_KEY/);
    resolver.close();
  });
});
