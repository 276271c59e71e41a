// berth as each user's OAuth client towards a remote MCP server: a real
// authorization server (oidc-provider with registration and its dev login and
// consent pages), a real SDK MCP server that takes only tokens whose audience
// is its own URL, and the SDK client through berth. The test plays the person:
// it opens /connect, presses "Authorize", signs in at the authorization server
// and follows the redirect back to berth's callback.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { silentLogger } from '../../src/observe/log.ts';
import { OAuthStore } from '../../src/oauth/token-store.ts';
import type { TokenSet } from '../../src/oauth/token-store.ts';
import { deriveKeyring } from '../../src/store/seal.ts';
import { StateStore } from '../../src/store/state.ts';
import { waitFor } from '../helpers/wait.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, repoRoot, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import type { OAuthRig } from '../helpers/oauth-flow.ts';
import { authorize as authorizeAs, startOAuthRig, whoami as whoamiAs } from '../helpers/oauth-flow.ts';
import type { ProtectedServer } from '../helpers/protected-server.ts';

const run = promisify(execFile);
const KEYS = { ada: 'berth_ada-0123456789abcdef-oauth', bob: 'berth_bob-0123456789abcdef-oauth' } as const;
type User = keyof typeof KEYS;
const STATE_KEY = '0123456789abcdef0123456789abcdef-oauth';

function head(stateDir: string, keys: readonly string[] = [STATE_KEY]): string {
  return `state: { path: ${JSON.stringify(path.join(stateDir, 'state.json'))}, keys: ${JSON.stringify(keys)} }\nauth:\n  - type: apiKey\n    keys:\n      - { user: ada, key: "${KEYS.ada}" }\n      - { user: bob, key: "${KEYS.bob}" }\n`;
}

function remote(name: string, url: string, oauth = '{ allowPrivateNetworks: true }'): string {
  return `  ${name}:\n    type: remote\n    url: ${url}\n    oauth: ${oauth}\n`;
}

/** The person at the browser, signed in to berth as `user`. */
function authorize(base: string, server: string, user: User): Promise<{ status: number; location: string | null; page: string }> {
  return authorizeAs(base, server, { 'x-api-key': KEYS[user] }, user);
}

/** What berth holds for a user, read from the state file the way berth reads it. */
async function storedToken(stateDir: string, user: User, server: string): Promise<TokenSet | undefined> {
  const state = await StateStore.open({ path: path.join(stateDir, 'state.json'), keys: [STATE_KEY] });
  return new OAuthStore(state, silentLogger()).token(`apiKey:${user}`, server);
}

/** Waits until the access token berth holds for a user is both expired (its `exp` passed) and due for refresh by berth's own clock. */
async function untilExpired(stateDir: string, user: User, server: string): Promise<void> {
  const set = (await storedToken(stateDir, user, server)) ?? assert.fail(`no token stored for ${user}`);
  const exp = decodeJwt(set.accessToken).exp ?? assert.fail('a token without exp');
  const due = Math.max(exp * 1000, set.refreshAt ?? 0) + 100;
  await waitFor(() => Date.now() > due, { timeoutMs: 15_000, message: `the token of ${user} to expire` });
}

function whoami(base: string, server: string, user: User): Promise<string> {
  return whoamiAs(base, server, { 'x-api-key': KEYS[user] });
}

describe('upstream OAuth: discovery, registration, PKCE, callback, token injection', () => {
  let rig: OAuthRig;
  let issuer: TestIssuer;
  let upstream: ProtectedServer;
  let b: TestBerth;
  let stateDir: string;

  before(async () => {
    rig = await startOAuthRig({ interactive: true, refresh: true }, (dir) => head(dir));
    ({ issuer, upstream, stateDir, berth: b } = rig);
  });
  after(() => rig?.stop());

  test('a user without a token is sent to /connect; after authorizing, calls carry a token for the server', async () => {
    await assert.rejects(connectClient(b.url, 'notes', {}, { 'x-api-key': KEYS.ada }), (err: unknown) => {
      assert.ok(err instanceof McpError, String(err));
      assert.match(err.message, new RegExp(`open ${b.url}/connect/notes to authorize`));
      return true;
    });
    assert.equal(upstream.authorizations.length, 0, 'nothing went upstream without a token');
    const done = await authorize(b.url, 'notes', 'ada');
    assert.equal(done.status, 303, done.page);
    assert.equal(done.location, '/connect/notes?done=connected');
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
    for (const header of upstream.authorizations) assert.ok(header === undefined || !header.includes(KEYS.ada), 'the client\'s own credential never goes upstream');
    const state = readFileSync(path.join(stateDir, 'state.json'), 'utf8');
    assert.doesNotMatch(state, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'no token in the clear in the state file');
  });

  test('berth oauth status shows each caller where discovery and their own authorization stand', async () => {
    const status = async (user: User): Promise<string> => (await run(process.execPath, [path.join(repoRoot, 'bin/berth.js'), 'oauth', 'status', 'notes', '--url', b.url], { env: { ...process.env, BERTH_TOKEN: KEYS[user], NO_COLOR: '1' } })).stdout;
    const ada = await status('ada');
    assert.match(ada, /^server notes {2}user ada$/m);
    assert.match(ada, /^oauth {6}configured \(oauth block\)$/m);
    assert.match(ada, new RegExp(`^discovery  authorization server ${issuer.issuer}$`, 'm'));
    assert.match(ada, new RegExp(`^token {6}connected at ${issuer.issuer}; scopes mcp:read; expires \\S+; refreshable$`, 'm'));
    assert.match(await status('bob'), new RegExp(`^token {6}not connected: open ${b.url}/connect/notes to authorize$`, 'm'));
    assert.doesNotMatch(ada, /eyJ/, 'no token in the output');
  });

  test('a second user authorizes separately and never gets the first one\'s token', async () => {
    await assert.rejects(connectClient(b.url, 'notes', {}, { 'x-api-key': KEYS.bob }), /connect\/notes/);
    assert.equal((await authorize(b.url, 'notes', 'bob')).status, 303);
    assert.equal(await whoami(b.url, 'notes', 'bob'), `sub=bob aud=${upstream.url}`);
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
  });

  test('a legacy SSE client gets the bridge to the remote with its own user\'s token', async () => {
    const headers = { 'x-api-key': KEYS.bob };
    const transport = new SSEClientTransport(new URL(`${b.url}/sse/notes`), { requestInit: { headers }, eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...init?.headers, ...headers } }) } });
    const client = new Client({ name: 'legacy', version: '1.0.0' });
    await client.connect(transport);
    try {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      assert.equal((result.content as { text: string }[])[0]?.text, `sub=bob aud=${upstream.url}`);
    } finally {
      await client.close();
    }
  });
});

describe('upstream OAuth: short-lived tokens, refresh, rotation, revocation, restarts', () => {
  let rig: OAuthRig;
  let issuer: TestIssuer;
  let upstream: ProtectedServer;
  let b: TestBerth;
  let stateDir: string;
  const refreshes = (): number => issuer.hits.get('/token') ?? 0;

  before(async () => {
    // 5 s: short enough to wait for, long enough that a refreshed token stays good through a burst of calls on a loaded machine.
    rig = await startOAuthRig({ interactive: true, refresh: true, accessTokenTtl: 5 }, (dir) => head(dir));
    ({ issuer, upstream, stateDir, berth: b } = rig);
    assert.equal((await authorize(b.url, 'notes', 'ada')).status, 303);
  });
  after(() => rig?.stop());

  test('20 concurrent calls on an expired token make one refresh grant, and all succeed with the new token', async () => {
    await untilExpired(stateDir, 'ada', 'notes');
    const before = refreshes();
    const old = (await storedToken(stateDir, 'ada', 'notes'))?.accessToken;
    const seen = upstream.accepted.length;
    const results = await Promise.all(Array.from({ length: 20 }, () => whoami(b.url, 'notes', 'ada')));
    for (const r of results) assert.equal(r, `sub=ada aud=${upstream.url}`);
    assert.equal(refreshes() - before, 1, 'one grant for twenty callers');
    const now = await storedToken(stateDir, 'ada', 'notes');
    assert.notEqual(now?.accessToken, old, 'the new token is stored');
    assert.ok(upstream.accepted.slice(seen).every((c) => c.exp !== undefined && c.exp * 1000 > Date.now() - 5_000), 'only fresh tokens reached the upstream');
  });

  test('the rotated refresh token is the one kept: the next expiry refreshes again', async () => {
    const first = (await storedToken(stateDir, 'ada', 'notes'))?.refreshToken;
    await untilExpired(stateDir, 'ada', 'notes');
    const before = refreshes();
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
    assert.equal(refreshes() - before, 1);
    const second = (await storedToken(stateDir, 'ada', 'notes'))?.refreshToken;
    assert.ok(first !== undefined && second !== undefined && first !== second, 'the authorization server rotated the refresh token and berth kept the new one');
  });

  test('tokens survive a restart of berth', async () => {
    await b.stop();
    b = rig.berth = await startTestBerth(remote('notes', upstream.url), head(stateDir));
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
  });

  test('a refresh token revoked at the authorization server: the user is asked again, never a 401 loop', async () => {
    const set = (await storedToken(stateDir, 'ada', 'notes')) ?? assert.fail('no token stored');
    const revoked = await fetch(`${issuer.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: set.refreshToken ?? '', token_type_hint: 'refresh_token', client_id: set.client.clientId }),
    });
    assert.equal(revoked.status, 200);
    await untilExpired(stateDir, 'ada', 'notes');
    const calls = upstream.authorizations.length;
    await assert.rejects(connectClient(b.url, 'notes', {}, { 'x-api-key': KEYS.ada }), /open .*\/connect\/notes to authorize/);
    assert.equal(upstream.authorizations.length, calls, 'nothing went upstream with a dead token');
    assert.equal(await storedToken(stateDir, 'ada', 'notes'), undefined, 'the dead token set is deleted');
    assert.equal((await authorize(b.url, 'notes', 'ada')).status, 303);
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
  });

  test('a flipped byte in the sealed token reads as "authorize again", not a 500', async () => {
    await b.stop();
    const file = path.join(stateDir, 'state.json');
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { oauth: { tokens: Record<string, Record<string, { sealed: string }>> } };
    const sealed = doc.oauth.tokens['apiKey:ada']?.notes ?? assert.fail('no sealed token');
    const parts = sealed.sealed.split('.');
    const cipher = parts[3] ?? '';
    parts[3] = `${cipher[0] === 'A' ? 'B' : 'A'}${cipher.slice(1)}`;
    sealed.sealed = parts.join('.');
    writeFileSync(file, JSON.stringify(doc));
    b = rig.berth = await startTestBerth(remote('notes', upstream.url), head(stateDir));
    await assert.rejects(connectClient(b.url, 'notes', {}, { 'x-api-key': KEYS.ada }), /open .*\/connect\/notes to authorize/);
    assert.equal((await authorize(b.url, 'notes', 'ada')).status, 303);
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
  });

  test('disconnect revokes at the authorization server and forgets the token', async () => {
    const set = (await storedToken(stateDir, 'ada', 'notes')) ?? assert.fail('no token stored');
    const page = await fetch(`${b.url}/connect/notes`, { headers: { 'x-api-key': KEYS.ada } });
    const html = await page.text();
    assert.match(html, /Connected \(scopes [^)]*at http:\/\/127\.0\.0\.1/);
    const csrf = /name="berth:csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const revocations = issuer.hits.get('/token/revocation') ?? 0;
    const res = await fetch(`${b.url}/connect/notes`, { method: 'POST', redirect: 'manual', headers: { 'x-api-key': KEYS.ada, cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ 'berth:csrf': csrf, 'berth:oauth': 'disconnect' }) });
    assert.equal(res.status, 303);
    assert.equal(issuer.hits.get('/token/revocation'), revocations + 1, 'revoked at the authorization server');
    assert.equal(await storedToken(stateDir, 'ada', 'notes'), undefined);
    const refresh = await fetch(`${issuer.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: set.refreshToken ?? '', client_id: set.client.clientId }) });
    assert.equal(((await refresh.json()) as { error?: string }).error, 'invalid_grant', 'the revoked refresh token is dead at the authorization server');
    assert.match(await (await fetch(`${b.url}/connect/notes`, { headers: { 'x-api-key': KEYS.ada } })).text(), /Not connected/);
  });

  test('berth state rotate-key re-seals tokens and registrations: berth on the new key alone still serves them', async () => {
    assert.equal((await authorize(b.url, 'notes', 'ada')).status, 303);
    await b.stop();
    const NEW = 'fedcba9876543210fedcba9876543210-rotated';
    const config = path.join(stateDir, 'rotate.yaml');
    writeFileSync(config, `version: 1\n${head(stateDir, [NEW, STATE_KEY])}servers: {}\n`);
    await run(process.execPath, [path.join(repoRoot, 'bin/berth.js'), 'state', 'rotate-key', config]);
    const doc = JSON.parse(readFileSync(path.join(stateDir, 'state.json'), 'utf8')) as { oauth: Record<string, Record<string, Record<string, { sealed: string }>>> };
    const sealed = Object.values(doc.oauth).flatMap((section) => Object.values(section).flatMap((entries) => Object.values(entries).map((v) => v.sealed)));
    assert.ok(sealed.length >= 2, 'a token and a registration');
    const kid = deriveKeyring([NEW]).keys[0]?.kid;
    for (const value of sealed) assert.equal(decodeProtectedHeader(value).kid, kid, 'sealed under the new key');
    b = rig.berth = await startTestBerth(remote('notes', upstream.url), head(stateDir, [NEW]));
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
  });
});
