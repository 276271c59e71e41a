// A pre-registered client that authenticates with private_key_jwt (RFC 7523):
// oidc-provider knows only its public key, so every token, refresh and
// revocation request berth makes succeeds only with an assertion signed by the
// configured private key (a PEM file read with ${file:…}).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, exportJWK, exportPKCS8, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey } from 'jose';
import { silentLogger } from '../../src/observe/log.ts';
import { OAuthStore } from '../../src/oauth/token-store.ts';
import type { TokenSet } from '../../src/oauth/token-store.ts';
import { StateStore } from '../../src/store/state.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { startTestBerth } from '../helpers/berth.ts';
import { arrive, consent, whoami } from '../helpers/oauth-flow.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { startIssuer } from '../helpers/oidc.ts';
import type { ProtectedServer } from '../helpers/protected-server.ts';
import { startProtectedServer } from '../helpers/protected-server.ts';
import { waitFor } from '../helpers/wait.ts';

const KEY = 'berth_ada-0123456789abcdef-oauth-pkjwt';
const AUTH = { 'x-api-key': KEY };
const STATE_KEY = '0123456789abcdef0123456789abcdef-pkjwt';
const PUBLIC = 'http://berth.test';
const CALLBACK = `${PUBLIC}/oauth/callback`;
const CLIENT_ID = 'berth-pkjwt';
const KID = 'berth-2026';

describe('upstream OAuth: a pre-registered client with private_key_jwt', () => {
  let issuer: TestIssuer;
  let upstream: ProtectedServer;
  let b: TestBerth;
  let dir: string;
  let privateKey: CryptoKey;

  const stored = async (): Promise<TokenSet | undefined> => {
    const state = await StateStore.open({ path: path.join(dir, 'state.json'), keys: [STATE_KEY] });
    return new OAuthStore(state, silentLogger()).token('apiKey:ada', 'notes');
  };

  before(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    // 5 s tokens: the refresh is part of what the key must sign.
    issuer = await startIssuer({
      interactive: true,
      refresh: true,
      accessTokenTtl: 5,
      clients: [{ client_id: CLIENT_ID, redirect_uris: [CALLBACK], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] } }],
    });
    upstream = await startProtectedServer(issuer.issuer);
    dir = mkdtempSync(path.join(tmpdir(), 'berth-pkjwt-'));
    writeFileSync(path.join(dir, 'client.pem'), await exportPKCS8(pair.privateKey), { mode: 0o600 });
    b = await startTestBerth(
      `  notes:\n    type: remote\n    url: ${upstream.url}\n    oauth:\n      allowPrivateNetworks: true\n      clientId: ${CLIENT_ID}\n      tokenEndpointAuthMethod: private_key_jwt\n      privateKey: { key: "\${file:${path.join(dir, 'client.pem')}}", kid: ${KID} }\n`,
      `listen: { host: 127.0.0.1, port: 0, publicUrl: ${PUBLIC} }\nstate: { path: ${JSON.stringify(path.join(dir, 'state.json'))}, key: "${STATE_KEY}" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: ada, key: "${KEY}" }\n`,
    );
  });
  after(async () => {
    await b?.stop();
    await upstream?.stop();
    await issuer?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the code grant, a refresh and the revocation each authenticate with an assertion signed by the configured key', async () => {
    const callback = await consent(b.url, 'notes', AUTH, 'ada', CALLBACK);
    const done = await arrive(b.url, callback, AUTH);
    assert.equal(done.status, 303, await done.text());
    assert.equal(await whoami(b.url, 'notes', AUTH), `sub=ada aud=${upstream.url}`);

    // The refresh: once the token is due, the next call makes one grant with a new assertion.
    const first = (await stored()) ?? assert.fail('no token stored');
    const exp = decodeJwt(first.accessToken).exp ?? assert.fail('a token without exp');
    const due = Math.max(exp * 1000, first.refreshAt ?? 0) + 100;
    await waitFor(() => Date.now() > due, { timeoutMs: 15_000, message: 'the token to expire' });
    const grants = issuer.hits.get('/token') ?? 0;
    assert.equal(await whoami(b.url, 'notes', AUTH), `sub=ada aud=${upstream.url}`);
    assert.equal((issuer.hits.get('/token') ?? 0) - grants, 1, 'one refresh grant');
    const second = (await stored()) ?? assert.fail('no token stored');
    assert.notEqual(second.accessToken, first.accessToken);
    assert.equal(second.client.authMethod, 'private_key_jwt');
    assert.doesNotMatch(JSON.stringify(second), /PRIVATE KEY|"d":/, 'the key is not stored with the token');

    // Disconnect revokes; the refresh token is then dead at the authorization server.
    const page = await fetch(`${b.url}/connect/notes`, { headers: AUTH });
    const html = await page.text();
    const csrf = /name="berth:csrf" value="([^"]+)"/.exec(html)?.[1] ?? assert.fail('no form');
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const res = await fetch(`${b.url}/connect/notes`, { method: 'POST', redirect: 'manual', headers: { ...AUTH, cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ 'berth:csrf': csrf, 'berth:oauth': 'disconnect' }) });
    assert.equal(res.status, 303);
    const assertion = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: KID }).setIssuer(CLIENT_ID).setSubject(CLIENT_ID).setAudience(issuer.issuer).setJti(randomUUID()).setIssuedAt().setExpirationTime('1m').sign(privateKey);
    const refresh = await fetch(`${issuer.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: second.refreshToken ?? '', client_id: CLIENT_ID, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }),
    });
    assert.equal(((await refresh.json()) as { error?: string }).error, 'invalid_grant', 'revoked by berth, authenticated with its assertion');
  });
});
