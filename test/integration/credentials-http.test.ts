// /connect/<server> and /api/credentials through berth's real HTTP server on
// port 0: a real browser (Debian's chromium via playwright-core) fills in the
// page, and fetch plays the script and the attacker.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { createAuthenticator } from '../../src/auth/chain.ts';
import { Gate } from '../../src/auth/gate.ts';
import { createCredentialRoutes } from '../../src/credentials/routes.ts';
import type { UserCredential } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { createMetrics } from '../../src/observe/metrics.ts';
import { originPolicy } from '../../src/http/guard.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import { EMPTY_TABLE } from '../../src/proxy/routes/table.ts';
import { CredentialStore } from '../../src/store/credentials.ts';
import { StateStore } from '../../src/store/state.ts';

const CHROMIUM = '/usr/bin/chromium';
const KEY = 'an-http-test-state-key-of-32-characters-or-more';
const FIELDS: Readonly<Record<string, readonly UserCredential[]>> = {
  github: [
    { name: 'GITHUB_TOKEN', required: true, sensitive: true, description: 'Personal access token with repo scope' },
    { name: 'GITHUB_ORG', required: false, sensitive: false, description: 'Organisation to work in' },
  ],
  plain: [],
  api: [{ name: 'API_TOKEN', required: true, sensitive: true, header: true }],
};

let dir = '';
let server: Server;
let base = '';
let store: CredentialStore;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-credentials-'));
  store = new CredentialStore(await StateStore.open({ path: path.join(dir, 'state.json'), keys: [KEY] }), silentLogger());
  const credentials = createCredentialRoutes({ store, fields: (name) => FIELDS[name] });
  // No auth configured: loopback callers are `anonymous`, as in a default berth.
  const gate = new Gate({ authenticator: createAuthenticator(undefined, { logger: silentLogger() }), logger: silentLogger() });
  server = createProxyServer({
    state: {
      table: () => EMPTY_TABLE,
      originPolicy: () => originPolicy({ host: '127.0.0.1' }),
      gate: () => gate,
      readiness: () => ({ ready: true, notReady: [] }),
      status: async () => ({}),
      credentials: () => credentials,
    },
    logger: silentLogger(),
    metrics: createMetrics({ defaults: false }),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('the API for scripts', () => {
  it('stores, lists (names only), summarises and deletes the caller\'s credentials', async () => {
    const put = await fetch(`${base}/api/credentials/github`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ GITHUB_TOKEN: 'api-secret-1', GITHUB_ORG: 'acme' }) });
    assert.equal(put.status, 200);
    assert.deepEqual(await put.json(), { server: 'github', saved: ['GITHUB_ORG', 'GITHUB_TOKEN'], missing: [] });
    assert.deepEqual(await store.get('anonymous', 'github'), { GITHUB_TOKEN: 'api-secret-1', GITHUB_ORG: 'acme' });
    const list = await fetch(`${base}/api/credentials`);
    assert.equal(list.headers.get('cache-control'), 'no-store');
    const listed = await list.text();
    assert.deepEqual(JSON.parse(listed), { user: 'anonymous', servers: { github: ['GITHUB_ORG', 'GITHUB_TOKEN'] } });
    assert.ok(!listed.includes('api-secret-1') && !listed.includes('acme'));
    assert.equal((await fetch(`${base}/api/credentials/github/GITHUB_ORG`, { method: 'DELETE' })).status, 204);
    assert.deepEqual(await (await fetch(`${base}/api/credentials/github`)).json(), { server: 'github', saved: ['GITHUB_TOKEN'], missing: [] });
    assert.equal((await fetch(`${base}/api/credentials/github`, { method: 'DELETE' })).status, 204);
    assert.deepEqual(await (await fetch(`${base}/api/credentials/github`)).json(), { server: 'github', saved: [], missing: ['GITHUB_TOKEN'] });
    assert.equal((await fetch(`${base}/api/credentials/github`, { method: 'DELETE' })).status, 404);
  });

  const refusals: readonly { name: string; path: string; init: RequestInit; status: number; code: string }[] = [
    { name: 'an undeclared name', path: '/api/credentials/github', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"OTHER":"x"}' }, status: 400, code: 'unknown_credential' },
    { name: 'a non-string value', path: '/api/credentials/github', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"GITHUB_TOKEN":42}' }, status: 400, code: 'invalid_value' },
    { name: 'an array body', path: '/api/credentials/github', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '["x"]' }, status: 400, code: 'invalid_body' },
    { name: 'malformed JSON', path: '/api/credentials/github', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{' }, status: 400, code: 'invalid_body' },
    { name: 'no values', path: '/api/credentials/github', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"GITHUB_TOKEN":""}' }, status: 400, code: 'invalid_body' },
    { name: 'a form body (no CORS preflight)', path: '/api/credentials/github', init: { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: '{"GITHUB_TOKEN":"x"}' }, status: 415, code: 'unsupported_media_type' },
    { name: 'an unknown server', path: '/api/credentials/nope', init: { method: 'GET' }, status: 404, code: 'not_found' },
    { name: 'POST', path: '/api/credentials/github', init: { method: 'POST' }, status: 405, code: 'method_not_allowed' },
  ];
  for (const c of refusals) {
    it(`refuses ${c.name} with ${c.status} ${c.code}`, async () => {
      const res = await fetch(`${base}${c.path}`, c.init);
      assert.equal(res.status, c.status);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, c.code);
    });
  }

  it('refuses a value a header cannot carry (CR, LF, non-ASCII) at PUT, naming the character', async () => {
    const cases = [
      { value: 'abc\r\nX-Injected: 1', says: 'API_TOKEN contains a carriage return (U+000D) at position 4' },
      { value: 'tok\nen', says: 'API_TOKEN contains a line feed (U+000A) at position 4' },
      { value: 'tökén', says: 'API_TOKEN contains a non-ASCII character (U+00F6) at position 2' },
    ];
    for (const c of cases) {
      const res = await fetch(`${base}/api/credentials/api`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ API_TOKEN: c.value }) });
      assert.equal(res.status, 400, c.value);
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(error.code, 'invalid_value');
      assert.ok(error.message.startsWith(c.says), error.message);
    }
    assert.deepEqual(await store.get('anonymous', 'api'), {});
    // An environment value may hold any text.
    const env = await fetch(`${base}/api/credentials/github`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ GITHUB_TOKEN: 'tökén' }) });
    assert.equal(env.status, 200);
    await store.delete('anonymous', 'github');
  });

  it('refuses a foreign Origin before anything else', async () => {
    const res = await fetch(`${base}/api/credentials/github`, { method: 'PUT', headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: '{"GITHUB_TOKEN":"x"}' });
    assert.equal(res.status, 403);
    assert.deepEqual(await store.get('anonymous', 'github'), {});
  });
});

describe('the /connect page', () => {
  it('sends the security headers and a __Host- CSRF cookie, and 404s for servers without fields', async () => {
    const res = await fetch(`${base}/connect/github`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-security-policy'), "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.match(res.headers.get('set-cookie') ?? '', /^__Host-berth-csrf=[A-Za-z0-9_-]{43}; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
    assert.equal((await fetch(`${base}/connect/plain`)).status, 404);
    assert.equal((await fetch(`${base}/connect/nope`)).status, 404);
  });

  it('refuses a POST without the cookie, without the token, or with a token that does not match', async () => {
    const page = await fetch(`${base}/connect/github`);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const token = /name="berth:csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    assert.ok(token.startsWith(`${cookie.split('=')[1] ?? ''}.`), 'the form carries the cookie\'s nonce, signed');
    const other = `${'A'.repeat(43)}.${token.split('.')[1] ?? ''}`;
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const cases = [
      { name: 'no cookie', headers: form, body: `berth%3Acsrf=${token}&GITHUB_TOKEN=forged` },
      { name: 'no token', headers: { ...form, cookie }, body: 'GITHUB_TOKEN=forged' },
      { name: 'another token', headers: { ...form, cookie }, body: `berth%3Acsrf=${other}&GITHUB_TOKEN=forged` },
    ];
    for (const c of cases) {
      const res = await fetch(`${base}/connect/github`, { method: 'POST', headers: c.headers, body: c.body, redirect: 'manual' });
      assert.equal(res.status, 403, c.name);
    }
    assert.deepEqual(await store.get('anonymous', 'github'), {});
    const ok = await fetch(`${base}/connect/github`, { method: 'POST', headers: { ...form, cookie }, body: `berth%3Acsrf=${token}&GITHUB_TOKEN=real`, redirect: 'manual' });
    assert.equal(ok.status, 303);
    assert.deepEqual(await store.get('anonymous', 'github'), { GITHUB_TOKEN: 'real' });
    await store.delete('anonymous', 'github');
  });

  it('refuses a valid token posted from another origin: another loopback port, or a cross-site fetch', async () => {
    const page = await fetch(`${base}/connect/github`);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const token = /name="berth:csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    const form = { 'content-type': 'application/x-www-form-urlencoded', cookie };
    const port = Number(new URL(base).port);
    const cases = [
      { name: 'another loopback port', headers: { ...form, origin: `http://127.0.0.1:${port + 1}` } },
      { name: 'another scheme-less loopback name', headers: { ...form, origin: `http://localhost:${port + 1}` } },
      { name: 'Sec-Fetch-Site same-site', headers: { ...form, 'sec-fetch-site': 'same-site' } },
    ];
    for (const c of cases) {
      const res = await fetch(`${base}/connect/github`, { method: 'POST', headers: c.headers, body: `berth%3Acsrf=${token}&GITHUB_TOKEN=forged`, redirect: 'manual' });
      assert.equal(res.status, 403, c.name);
    }
    const api = await fetch(`${base}/api/credentials/github`, { method: 'PUT', headers: { 'content-type': 'application/json', origin: `http://127.0.0.1:${port + 1}` }, body: '{"GITHUB_TOKEN":"forged"}' });
    assert.equal(api.status, 403);
    assert.equal(((await api.json()) as { error: { code: string } }).error.code, 'foreign_origin');
    assert.deepEqual(await store.get('anonymous', 'github'), {});
    const own = await fetch(`${base}/connect/github`, { method: 'POST', headers: { ...form, origin: base, 'sec-fetch-site': 'same-origin' }, body: `berth%3Acsrf=${token}&GITHUB_TOKEN=mine`, redirect: 'manual' });
    assert.equal(own.status, 303);
    await store.delete('anonymous', 'github');
  });
});

// Loopback only: no background or component traffic to any other host.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const browserSkip = existsSync(CHROMIUM) ? false : `SKIPPED: ${CHROMIUM} is missing; install it with apt-get install -y chromium`;

// Skipped per test, not per suite: node's summary counts skipped tests, never the tests of a skipped suite.
describe('the /connect page in headless Chromium', () => {
  it('a page on another loopback port that plants the cookie and posts a matching token is refused', { skip: browserSkip }, async () => {
    await store.set('anonymous', 'github', { GITHUB_TOKEN: { value: 'victim-secret', sensitive: true } });
    // Cookies ignore ports: a page on 127.0.0.1:<other> can set berth's cookie, and its posts are same-site.
    const nonce = 'B'.repeat(43);
    const evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': `__Host-berth-csrf=${nonce}; Path=/; Secure; SameSite=Lax` });
      res.end(`<!doctype html><form method="post" action="${base}/connect/github"><input name="berth:csrf" value="${nonce}"><input name="GITHUB_TOKEN" value="planted"></form>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      const planted = await page.context().cookies(base);
      assert.ok(planted.some((c) => c.name === '__Host-berth-csrf' && c.value === nonce), 'the other port planted the cookie for berth');
      const [answer] = await Promise.all([page.waitForResponse(`${base}/connect/github`), page.evaluate('document.forms[0].submit()')]);
      assert.equal(answer.status(), 403);
      assert.deepEqual(await store.get('anonymous', 'github'), { GITHUB_TOKEN: 'victim-secret' });
    } finally {
      await browser.close();
      evil.close();
      await store.delete('anonymous', 'github');
    }
  });

  it('renders the fields, saves a credential the API then lists, never shows it again, and refuses a cross-site post', { skip: browserSkip }, async () => {
    const shots = mkdtempSync(path.join(tmpdir(), 'berth-connect-shots-'));
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const response = await page.goto(`${base}/connect/github`);
      assert.equal(response?.status(), 200);
      assert.equal(await page.title(), 'Connect github · berth');
      assert.equal(await page.locator('input#f-GITHUB_TOKEN').getAttribute('type'), 'password');
      assert.equal(await page.locator('input#f-GITHUB_TOKEN').getAttribute('required'), '');
      assert.match(await page.locator('body').innerText(), /Personal access token with repo scope/);
      assert.ok(await page.locator('h1').isVisible() && await page.locator('input#f-GITHUB_TOKEN').isVisible(), 'the heading and the field are drawn');
      const empty = await page.screenshot({ path: path.join(shots, 'connect-empty.png'), fullPage: true });

      // The browser kept the __Host- cookie over plain http on 127.0.0.1.
      const cookies = await page.context().cookies();
      assert.ok(cookies.some((c) => c.name === '__Host-berth-csrf' && c.secure && c.httpOnly && c.sameSite === 'Strict'), JSON.stringify(cookies));

      await page.fill('#f-GITHUB_TOKEN', 'browser-secret-1');
      await page.fill('#f-GITHUB_ORG', 'acme');
      await Promise.all([page.waitForURL(/done=saved/), page.click('button[type=submit]:not(.remove)')]);
      // Enter in a field saves; it must never hit a Forget button.
      await page.fill('#f-GITHUB_ORG', 'acme');
      await Promise.all([page.waitForURL(/done=saved/), page.press('#f-GITHUB_ORG', 'Enter')]);
      const html = await page.content();
      assert.ok(!html.includes('browser-secret-1') && !html.includes('acme'), 'a saved value was rendered back');
      assert.equal(await page.locator('label[for=f-GITHUB_TOKEN] .saved').innerText(), 'saved');
      const saved = await page.screenshot({ path: path.join(shots, 'connect-saved.png'), fullPage: true });
      assert.ok(!saved.equals(empty), 'the saved page looks different from the empty one');
      process.stderr.write(`# /connect screenshots: ${shots}\n`);

      const listed = await (await fetch(`${base}/api/credentials`)).json();
      assert.deepEqual(listed, { user: 'anonymous', servers: { github: ['GITHUB_ORG', 'GITHUB_TOKEN'] } });
      assert.deepEqual(await store.get('anonymous', 'github'), { GITHUB_TOKEN: 'browser-secret-1', GITHUB_ORG: 'acme' });

      // A page on another origin auto-submits a form here: no CSRF token, and
      // SameSite=Strict keeps the cookie back, so the post is refused.
      const evil = await browser.newPage();
      await evil.setContent(`<form method="post" action="${base}/connect/github"><input name="GITHUB_TOKEN" value="evil"></form>`);
      const [refused] = await Promise.all([evil.waitForResponse(`${base}/connect/github`), evil.evaluate('document.forms[0].submit()')]);
      assert.equal(refused.status(), 403);
      assert.deepEqual(await store.get('anonymous', 'github'), { GITHUB_TOKEN: 'browser-secret-1', GITHUB_ORG: 'acme' });

      // Forget one value with its button.
      await Promise.all([page.waitForURL(/done=removed/), page.click('button.remove[value=GITHUB_ORG]')]);
      assert.deepEqual(store.list('anonymous'), { github: ['GITHUB_TOKEN'] });
    } finally {
      await browser.close();
    }
  });
});
