// The pure parts of downstream auth, table-driven: access rules, resource
// URLs and challenges, the apiKey and header providers, start-up checks.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { mayAccess, missingScopes } from '../../src/auth/access.ts';
import { apiKeyProvider, newApiKey, sha256Hex } from '../../src/auth/api-key.ts';
import { checkAuthConfig } from '../../src/auth/chain.ts';
import { headerProvider } from '../../src/auth/header.ts';
import type { Identity } from '../../src/identity.ts';
import type { AuthRequest } from '../../src/auth/provider.ts';
import { audiencesOf, baseUrl, bearerChallenge, metadataTarget, metadataUrl, protectedResourceMetadata, targetOf } from '../../src/auth/resource.ts';
import { keyEntryYaml } from '../../src/cli/key.ts';
import type { Access } from '../../src/desired/types.ts';

const alice: Identity = { user: 'alice', key: 'jwt:https://idp.test#alice', groups: ['eng'], scopes: ['mcp:read'], provider: 'jwt' };

describe('access rules', () => {
  const cases: { name: string; access: Access | undefined; allowed: boolean }[] = [
    { name: 'no rule: everyone', access: undefined, allowed: true },
    { name: 'an empty rule: nobody', access: {}, allowed: false },
    { name: 'named user', access: { users: ['alice'] }, allowed: true },
    { name: 'another user', access: { users: ['bob'] }, allowed: false },
    { name: 'member of a group', access: { users: ['bob'], groups: ['eng'] }, allowed: true },
    { name: 'scopes alone, held', access: { scopes: ['mcp:read'] }, allowed: true },
    { name: 'scopes alone, one missing', access: { scopes: ['mcp:read', 'mcp:write'] }, allowed: false },
    { name: 'named but without the scope', access: { groups: ['eng'], scopes: ['mcp:write'] }, allowed: false },
  ];
  for (const c of cases) test(c.name, () => assert.equal(mayAccess(c.access, alice), c.allowed));
  test('missing scopes are listed', () => assert.deepEqual(missingScopes(['mcp:read', 'a', 'b'], alice), ['a', 'b']));
});

describe('resource URLs', () => {
  const req = (host?: string): IncomingMessage => ({ headers: host === undefined ? {} : { host } }) as IncomingMessage;
  test('publicUrl wins and loses its trailing slash; else the Host the request came on', () => {
    assert.equal(baseUrl('https://mcp.example.com/', req('127.0.0.1:1')), 'https://mcp.example.com');
    assert.equal(baseUrl(undefined, req('127.0.0.1:8080')), 'http://127.0.0.1:8080');
    assert.equal(baseUrl(undefined, req('evil"host')), 'http://localhost', 'a Host that could break the challenge is not echoed');
  });
  const cases: { path: string; server?: string; resource?: string }[] = [
    { path: '/mcp/notes', server: 'notes', resource: '/mcp/notes' },
    { path: '/mcp/notes/mcp', server: 'notes', resource: '/mcp/notes/mcp' },
    { path: '/sse/notes/message', server: 'notes', resource: '/sse/notes' },
    { path: '/healthz' },
    { path: '/mcp/a/b/c' },
  ];
  for (const c of cases) {
    test(`the resource of ${c.path}`, () => {
      const target = targetOf(c.path);
      assert.equal(target?.server, c.server);
      assert.equal(target?.path, c.resource);
    });
  }
  test('metadata lives at the path-inserted well-known URL, below publicUrl paths too', () => {
    const base = 'https://example.com/berth';
    const target = { server: 'notes', path: '/mcp/notes' };
    assert.equal(metadataUrl(base, target), 'https://example.com/.well-known/oauth-protected-resource/berth/mcp/notes');
    assert.deepEqual(metadataTarget('/.well-known/oauth-protected-resource/berth/mcp/notes', `${base}/`), target);
    assert.deepEqual(metadataTarget('/.well-known/oauth-protected-resource/mcp/notes', base), target, 'an ingress that strips the prefix');
    assert.equal(protectedResourceMetadata(base, target, ['https://idp'], [])['resource'], 'https://example.com/berth/mcp/notes');
  });
  test('a route alias accepts tokens for the canonical route URL too', () => {
    assert.deepEqual(audiencesOf('http://h', { server: 'x', path: '/mcp/x/mcp' }), ['http://h/mcp/x/mcp', 'http://h/mcp/x']);
    assert.deepEqual(audiencesOf('http://h', { server: 'x', path: '/mcp/x' }), ['http://h/mcp/x']);
  });
  test('challenges', () => {
    assert.equal(bearerChallenge({}), 'Bearer realm="berth"');
    assert.equal(
      bearerChallenge({ resourceMetadata: 'https://h/.well-known/oauth-protected-resource/mcp/x', scopes: ['a', 'b'], error: 'insufficient_scope', description: 'needs "a"' }),
      'Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp/x", scope="a b", error="insufficient_scope", error_description="needs a"',
    );
  });
});

describe('providers', () => {
  const request = (headers: Record<string, string>, remoteAddress = '127.0.0.1'): AuthRequest => ({ headers, remoteAddress, audiences: [] });

  test('apiKey: X-API-Key or bearer; a foreign bearer token passes on, a wrong X-API-Key does not', async () => {
    const { key, sha256 } = newApiKey();
    const provider = apiKeyProvider([{ user: 'alice', groups: ['eng'], sha256 }, { user: 'bob', key: 'bob-key-0123456789abcdef' }]);
    assert.deepEqual(await provider.verify(request({ 'x-api-key': key })), { kind: 'identity', identity: { user: 'alice', key: 'apiKey:alice', groups: ['eng'], scopes: [], provider: 'apiKey' } });
    assert.equal(((await provider.verify(request({ authorization: 'Bearer bob-key-0123456789abcdef' }))) as { identity: Identity }).identity.user, 'bob');
    assert.equal((await provider.verify(request({ authorization: 'Bearer eyJhbGciOi.eyJzdWIi.sig' }))).kind, 'pass');
    assert.equal((await provider.verify(request({ authorization: `Bearer ${key}x` }))).kind, 'invalid', 'a berth_ key that is wrong');
    assert.equal((await provider.verify(request({ 'x-api-key': 'nope' }))).kind, 'invalid');
    assert.equal((await provider.verify(request({}))).kind, 'pass');
    assert.equal(sha256, sha256Hex(key));
  });

  test('header: believed only from trusted proxy addresses', async () => {
    const provider = headerProvider({ userHeader: 'X-Auth-User', trustedProxies: ['10.0.0.0/8', 'fd00::/8'] });
    const headers = { 'x-auth-user': 'dave', 'x-forwarded-groups': 'ops, eng' };
    const cases: { address: string; trusted: boolean }[] = [
      { address: '10.1.2.3', trusted: true },
      { address: '::ffff:10.1.2.3', trusted: true },
      { address: 'fd00::1', trusted: true },
      { address: '127.0.0.1', trusted: false },
      { address: '11.0.0.1', trusted: false },
    ];
    for (const c of cases) {
      const verdict = await provider.verify(request(headers, c.address));
      assert.equal(verdict.kind, c.trusted ? 'identity' : 'pass', c.address);
      if (verdict.kind === 'identity') assert.deepEqual(verdict.identity.groups, ['ops', 'eng']);
    }
  });
});

describe('start-up checks', () => {
  const cases: { name: string; config: Parameters<typeof checkAuthConfig>[0]; codes: string[] }[] = [
    { name: 'none on loopback', config: { auth: [{ type: 'none' }] }, codes: [] },
    { name: 'none on all addresses', config: { listen: { host: '0.0.0.0' }, auth: [{ type: 'none' }] }, codes: ['auth_none_exposed'] },
    { name: 'jwt on all addresses without publicUrl', config: { listen: { host: '0.0.0.0' }, auth: [{ type: 'jwt', issuer: 'https://idp' }] }, codes: ['auth_public_url_missing'] },
    { name: 'jwt on all addresses with publicUrl', config: { listen: { host: '0.0.0.0', publicUrl: 'https://mcp.example.com' }, auth: [{ type: 'jwt', issuer: 'https://idp' }] }, codes: [] },
    { name: 'a proxy that is not an address', config: { auth: [{ type: 'header', trustedProxies: ['10.0.0.0/33', 'proxy.local'] }] }, codes: ['auth_invalid_proxy', 'auth_invalid_proxy'] },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(checkAuthConfig(c.config).map((p) => p.code), c.codes));
  test('the message says what to do', () => assert.match(checkAuthConfig(cases[1]!.config)[0]!.message, /set listen.host to 127.0.0.1/));
});

test('berth key new: the YAML line parses to the entry that accepts the key', () => {
  const { key, sha256 } = newApiKey();
  const entry = parse(keyEntryYaml('alice "a"', ['eng', 'on-call'], sha256)) as unknown[];
  assert.deepEqual(entry, [{ user: 'alice "a"', groups: ['eng', 'on-call'], sha256 }]);
  assert.match(key, /^berth_[\w-]{43}$/);
});
