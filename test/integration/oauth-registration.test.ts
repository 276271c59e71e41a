// Dynamic client registrations over their life: one the authorization server
// forgot is made again (before the user is sent to it, or after its refresh
// was refused with invalid_client), and an authorization server that changes
// gets its own registration, keyed by its issuer. Real oidc-provider.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../src/observe/log.ts';
import { OAuthStore } from '../../src/oauth/token-store.ts';
import type { ClientIdentity } from '../../src/oauth/token-store.ts';
import { StateStore } from '../../src/store/state.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, startTestBerth } from '../helpers/berth.ts';
import type { OAuthRig } from '../helpers/oauth-flow.ts';
import { arrive, pressAuthorize, startOAuthRig, whoami } from '../helpers/oauth-flow.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { continueUrl, signIn, startIssuer } from '../helpers/oidc.ts';

const KEY = 'berth_ada-0123456789abcdef-oauth-reg';
const AUTH = { 'x-api-key': KEY };
const STATE_KEY = '0123456789abcdef0123456789abcdef-reg';

function head(stateDir: string): string {
  return `state: { path: ${JSON.stringify(path.join(stateDir, 'state.json'))}, key: "${STATE_KEY}" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: ada, key: "${KEY}" }\n`;
}

async function storedClient(stateDir: string, server: string, issuer: string): Promise<ClientIdentity | undefined> {
  const state = await StateStore.open({ path: path.join(stateDir, 'state.json'), keys: [STATE_KEY] });
  return new OAuthStore(state, silentLogger()).client(server, issuer);
}

/** Presses Authorize: the URL berth sends the user to. */
async function authorizationUrl(base: string, server: string): Promise<URL> {
  const res = await pressAuthorize(base, server, AUTH);
  const page = await res.text();
  assert.equal(res.status, 200, page);
  return new URL(continueUrl(page) ?? assert.fail(`no link onwards in ${page}`));
}

describe('upstream OAuth: a registration the authorization server forgot', () => {
  let rig: OAuthRig;
  let issuer: TestIssuer;
  let b: TestBerth;
  const registrations = (): number => issuer.hits.get('/reg') ?? 0;

  before(async () => {
    rig = await startOAuthRig({ interactive: true, refresh: true }, head);
    ({ issuer, berth: b } = rig);
  });
  after(() => rig?.stop());

  test('is made again before the user is sent to it (RFC 7592 read), and the new one is kept', async () => {
    const first = (await authorizationUrl(b.url, 'notes')).searchParams.get('client_id') ?? assert.fail('no client_id');
    assert.equal(registrations(), 1);
    await issuer.forgetClient(first);
    const asked = await authorizationUrl(b.url, 'notes');
    const second = asked.searchParams.get('client_id');
    assert.equal(registrations(), 2, 'registered again, once');
    assert.notEqual(second, first);
    assert.equal((await storedClient(rig.stateDir, 'notes', issuer.issuer))?.clientId, second, 'the new registration is recorded');
    const done = await arrive(b.url, await signIn(asked, 'ada', `${b.url}/oauth/callback`), AUTH);
    assert.equal(done.status, 303, await done.text());
    assert.equal(await whoami(b.url, 'notes', AUTH), `sub=ada aud=${rig.upstream.url}`);
    assert.equal((await authorizationUrl(b.url, 'notes')).searchParams.get('client_id'), second, 'a registration still known is reused');
    assert.equal(registrations(), 2);
  });

  test('a refresh answered invalid_client drops the token and the registration; the next authorization registers once and works', async () => {
    const client = (await storedClient(rig.stateDir, 'notes', issuer.issuer)) ?? assert.fail('no registration stored');
    await issuer.forgetClient(client.clientId);
    // The upstream refuses the token berth holds, which is then spent: berth refreshes it (on this call
    // or the next), and the authorization server no longer knows the client.
    rig.upstream.revokeAccepted();
    for (let call = 0; call < 2; call++) await assert.rejects(connectClient(b.url, 'notes', {}, AUTH), /open .*\/connect\/notes to authorize/);
    assert.equal(await storedClient(rig.stateDir, 'notes', issuer.issuer), undefined, 'the refused registration is no longer stored');
    const before = registrations();
    const asked = await authorizationUrl(b.url, 'notes');
    assert.equal(registrations() - before, 1);
    assert.notEqual(asked.searchParams.get('client_id'), client.clientId);
    assert.equal((await arrive(b.url, await signIn(asked, 'ada', `${b.url}/oauth/callback`), AUTH)).status, 303);
    assert.equal(await whoami(b.url, 'notes', AUTH), `sub=ada aud=${rig.upstream.url}`);
  });

  test('a code exchange answered invalid_client says so and drops the registration; Authorize again registers anew', async () => {
    const asked = await authorizationUrl(b.url, 'notes');
    const callback = await signIn(asked, 'ada', `${b.url}/oauth/callback`);
    // Forgotten between the consent and the callback: the code belongs to a client the server no longer knows.
    await issuer.forgetClient(asked.searchParams.get('client_id') ?? '');
    const done = await arrive(b.url, callback, AUTH);
    assert.equal(done.status, 502);
    assert.match(await done.text(), /no longer knows berth&#39;s registration \(invalid_client\); press Authorize again/);
    assert.equal(await storedClient(rig.stateDir, 'notes', issuer.issuer), undefined);
    const before = registrations();
    const again = await authorizationUrl(b.url, 'notes');
    assert.equal(registrations() - before, 1);
    assert.equal((await arrive(b.url, await signIn(again, 'ada', `${b.url}/oauth/callback`), AUTH)).status, 303);
  });
});

describe('upstream OAuth: an authorization server that changes', () => {
  let first: TestIssuer;
  let second: TestIssuer;
  let current: string;
  let resource: Server;
  let b: TestBerth;
  let stateDir: string;

  before(async () => {
    first = await startIssuer({ interactive: true, refresh: true });
    second = await startIssuer({ interactive: true, refresh: true });
    current = first.issuer;
    // A resource whose metadata names whichever authorization server the test says.
    resource = createServer((req, res) => {
      const { port } = resource.address() as AddressInfo;
      if (req.url === '/.well-known/oauth-protected-resource/mcp') {
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ resource: `http://127.0.0.1:${port}/mcp`, authorization_servers: [current] }));
      }
      res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"` }).end();
    });
    await new Promise<void>((resolve) => resource.listen(0, '127.0.0.1', resolve));
    stateDir = mkdtempSync(path.join(tmpdir(), 'berth-oauth-'));
    const url = `http://127.0.0.1:${(resource.address() as AddressInfo).port}/mcp`;
    b = await startTestBerth(`  moving:\n    type: remote\n    url: ${url}\n    oauth: { allowPrivateNetworks: true }\n`, head(stateDir));
  });
  after(async () => {
    await b?.stop();
    resource?.closeAllConnections();
    await new Promise<void>((resolve) => (resource === undefined ? resolve() : resource.close(() => resolve())));
    await first?.stop();
    await second?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('gets its own registration keyed by its issuer; the first one serves again when it comes back', async () => {
    const one = await authorizationUrl(b.url, 'moving');
    assert.equal(one.origin, first.issuer);
    current = second.issuer;
    const two = await authorizationUrl(b.url, 'moving');
    assert.equal(two.origin, second.issuer);
    assert.equal(second.hits.get('/reg'), 1, 'registered at the new authorization server');
    const stored = [await storedClient(stateDir, 'moving', first.issuer), await storedClient(stateDir, 'moving', second.issuer)];
    assert.deepEqual(stored.map((c) => c?.clientId), [one.searchParams.get('client_id'), two.searchParams.get('client_id')]);
    current = first.issuer;
    const again = await authorizationUrl(b.url, 'moving');
    assert.equal(again.searchParams.get('client_id'), one.searchParams.get('client_id'));
    assert.equal(first.hits.get('/reg'), 1, 'the first registration is reused, not made twice');
  });
});
