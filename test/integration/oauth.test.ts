// berth as each user's OAuth client towards a remote MCP server: a real
// authorization server (oidc-provider with registration and its dev login and
// consent pages), a real SDK MCP server that takes only tokens whose audience
// is its own URL, and the SDK client through berth. The test plays the person:
// it opens /connect, presses "Authorize", signs in at the authorization server
// and follows the redirect back to berth's callback.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { signIn, startIssuer } from '../helpers/oidc.ts';
import type { ProtectedServer } from '../helpers/protected-server.ts';
import { startProtectedServer } from '../helpers/protected-server.ts';

const KEYS = { ada: 'berth_ada-0123456789abcdef-oauth', bob: 'berth_bob-0123456789abcdef-oauth' } as const;
type User = keyof typeof KEYS;
const STATE_KEY = '0123456789abcdef0123456789abcdef-oauth';

function head(stateDir: string): string {
  return `state: { path: ${JSON.stringify(path.join(stateDir, 'state.json'))}, key: "${STATE_KEY}" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: ada, key: "${KEYS.ada}" }\n      - { user: bob, key: "${KEYS.bob}" }\n`;
}

function remote(name: string, url: string, oauth = '{ allowPrivateNetworks: true }'): string {
  return `  ${name}:\n    type: remote\n    url: ${url}\n    oauth: ${oauth}\n`;
}

/** The person at the browser: /connect → Authorize → the authorization server's pages → berth's callback. Returns berth's final answer. */
export async function authorize(base: string, server: string, user: User, login: string = user): Promise<{ status: number; location: string | null; page: string }> {
  const auth = { 'x-api-key': KEYS[user] };
  const page = await fetch(`${base}/connect/${server}`, { headers: auth });
  const html = await page.text();
  assert.equal(page.status, 200, html);
  const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const csrf = /name="berth:csrf" value="([^"]+)"/.exec(html)?.[1] ?? assert.fail(`no CSRF token in ${html}`);
  const start = await fetch(`${base}/connect/${server}`, {
    method: 'POST',
    headers: { ...auth, cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ 'berth:csrf': csrf, 'berth:oauth': 'authorize' }),
    redirect: 'manual',
  });
  const to = start.headers.get('location');
  if (start.status !== 303 || to === null) return { status: start.status, location: to, page: await start.text() };
  const back = await signIn(new URL(to), login, `${base}/oauth/callback`);
  const done = await fetch(back, { headers: auth, redirect: 'manual' });
  return { status: done.status, location: done.headers.get('location'), page: await done.text() };
}

async function whoami(base: string, server: string, user: User): Promise<string> {
  const client = await connectClient(base, server, {}, { 'x-api-key': KEYS[user] });
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    return (result.content as { text: string }[])[0]?.text ?? '';
  } finally {
    await client.close();
  }
}

describe('upstream OAuth: discovery, registration, PKCE, callback, token injection', () => {
  let issuer: TestIssuer;
  let upstream: ProtectedServer;
  let b: TestBerth;
  let stateDir: string;

  before(async () => {
    issuer = await startIssuer({ interactive: true, refresh: true });
    upstream = await startProtectedServer(issuer.issuer);
    stateDir = mkdtempSync(path.join(tmpdir(), 'berth-oauth-'));
    b = await startTestBerth(remote('notes', upstream.url), head(stateDir));
  });
  after(async () => {
    await b?.stop();
    await upstream?.stop();
    await issuer?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

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

  test('a second user authorizes separately and never gets the first one\'s token', async () => {
    await assert.rejects(connectClient(b.url, 'notes', {}, { 'x-api-key': KEYS.bob }), /connect\/notes/);
    assert.equal((await authorize(b.url, 'notes', 'bob')).status, 303);
    assert.equal(await whoami(b.url, 'notes', 'bob'), `sub=bob aud=${upstream.url}`);
    assert.equal(await whoami(b.url, 'notes', 'ada'), `sub=ada aud=${upstream.url}`);
  });
});
