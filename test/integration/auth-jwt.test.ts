// The jwt provider against a real issuer, driven directly: key rotation with
// a rate-limited refetch for unknown key ids, and opaque tokens checked by
// RFC 7662 introspection.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { importJWK, SignJWT } from 'jose';
import { createAuthenticator } from '../../src/auth/chain.ts';
import { Gate } from '../../src/auth/gate.ts';
import type { Verdict } from '../../src/auth/provider.ts';
import { silentLogger } from '../../src/observe/log.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { CLIENT, INTROSPECTOR, startIssuer } from '../helpers/oidc.ts';
import { waitFor } from '../helpers/wait.ts';

const RESOURCE = 'http://127.0.0.1:8080/mcp/everything';
const COOLDOWN_MS = 1_000;

describe('jwt provider against oidc-provider', () => {
  let issuer: TestIssuer;
  before(async () => {
    issuer = await startIssuer();
  });
  after(() => issuer.stop());

  const authenticatorFor = (extra: Record<string, unknown> = {}) =>
    createAuthenticator([{ type: 'jwt', issuer: issuer.issuer, ...extra }], { logger: silentLogger(), jwksCooldownMs: COOLDOWN_MS });
  const check = (auth: ReturnType<typeof authenticatorFor>, token: string, resource = RESOURCE): Promise<Verdict> =>
    auth.authenticate({ headers: { authorization: `Bearer ${token}` }, remoteAddress: '127.0.0.1', audiences: [resource] });
  const jwksHits = (): number => issuer.hits.get('/jwks') ?? 0;

  test('claims map to user, groups and scopes', async () => {
    const verdict = await check(authenticatorFor(), await issuer.token(RESOURCE, 'mcp:read'));
    assert.equal(verdict.kind, 'identity');
    assert.deepEqual(verdict.kind === 'identity' && verdict.identity, { user: 'agent', key: `jwt:${issuer.issuer}#agent`, groups: ['eng'], scopes: ['mcp:read'], provider: 'jwt' });
  });

  test('after a key rotation the new kid is fetched, at most once per cooldown however many unknown kids arrive', async () => {
    const auth = authenticatorFor();
    assert.equal((await check(auth, await issuer.token(RESOURCE))).kind, 'identity');
    const before = jwksHits();
    const key = await issuer.rotate();
    const rotated = await issuer.token(RESOURCE);
    // A flood of tokens naming unknown kids: the key set is refetched at most once per cooldown.
    const signer = await importJWK(key, 'RS256');
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      const forged = await new SignJWT({ sub: 'x', aud: RESOURCE }).setProtectedHeader({ alg: 'RS256', kid: `random-${i}` }).setIssuer(issuer.issuer).setExpirationTime('5m').sign(signer);
      assert.equal((await check(auth, forged)).kind, 'invalid');
    }
    const windows = Math.floor((Date.now() - started) / COOLDOWN_MS) + 1;
    assert.ok(jwksHits() - before <= windows, `JWKS fetched ${jwksHits() - before} times in ${windows} cooldown windows`);
    await waitFor(async () => (await check(auth, rotated)).kind === 'identity', { timeoutMs: 5 * COOLDOWN_MS, message: 'the rotated key to be accepted' });
  });

  test('opaque tokens are introspected: active ones map to an identity, others are refused', async () => {
    const auth = authenticatorFor({ introspection: { clientId: INTROSPECTOR.id, clientSecret: INTROSPECTOR.secret } });
    const resource = 'http://127.0.0.1:8080/mcp/opaque';
    const token = await issuer.token(resource, 'mcp:read');
    assert.doesNotMatch(token, /\./, 'the issuer minted an opaque token');
    const verdict = await check(auth, token, resource);
    assert.equal(verdict.kind, 'identity', JSON.stringify(verdict));
    assert.deepEqual(verdict.kind === 'identity' && verdict.identity.scopes, ['mcp:read']);
    assert.equal((await check(auth, token, RESOURCE)).kind, 'invalid', 'the opaque token is for another resource');
    assert.equal((await check(auth, 'not-a-token-the-issuer-knows')).kind, 'invalid');
  });

  test('an introspected token whose answer names no audience is refused unless allowMissingAudience', async () => {
    // A client-credentials token asked without a resource: the issuer mints it opaque and for no audience.
    const response = await fetch(`${issuer.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'mcp:read' }),
    });
    const token = ((await response.json()) as { access_token: string }).access_token;
    const introspection = { clientId: INTROSPECTOR.id, clientSecret: INTROSPECTOR.secret };
    const refused = await check(authenticatorFor({ introspection }), token);
    assert.deepEqual(refused, { kind: 'invalid', reason: 'the token names no audience (aud); the issuer must mint it for this resource' });
    assert.equal((await check(authenticatorFor({ introspection: { ...introspection, allowMissingAudience: true } }), token)).kind, 'identity');
  });

  for (const [what, status, body] of [
    ['answers 500', 500, '{"keys":[]}'],
    ['answers with invalid JSON', 200, '{"keys": ['],
    ['answers with no key set', 200, '{"keys": 5}'],
  ] as const) {
    test(`a JWKS endpoint that ${what} makes the token unavailable (503), not invalid (401)`, async () => {
      const jwks = createServer((_req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end(body));
      await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
      try {
        const jwksUri = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
        const auth = createAuthenticator([{ type: 'jwt', issuer: issuer.issuer, jwksUri }], { logger: silentLogger() });
        const token = await new SignJWT({ sub: 'x', aud: RESOURCE }).setProtectedHeader({ alg: 'RS256', kid: 'k' }).setIssuer(issuer.issuer).setExpirationTime('5m').sign(await importJWK(issuer.keys[0]!, 'RS256'));
        const verdict = await check(auth, token);
        assert.equal(verdict.kind, 'unavailable', JSON.stringify(verdict));
      } finally {
        jwks.close();
      }
    });
  }

  test('a token for a route is good on that server\'s /connect page and credentials API, and on no other server\'s', async () => {
    const gate = new Gate({ authenticator: authenticatorFor(), publicUrl: 'http://127.0.0.1:8080', logger: silentLogger() });
    const server = createServer((req, res) => {
      void gate.admit(req, res, new URL(req.url ?? '/', 'http://x').pathname, () => undefined).then((identity) => {
        if (identity !== undefined) res.end(identity.user);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const at = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const token = await issuer.token(RESOURCE, 'mcp:read');
      const statusOf = async (path: string) => (await fetch(`${at}${path}`, { headers: { authorization: `Bearer ${token}` } })).status;
      assert.deepEqual(
        { connect: await statusOf('/connect/everything'), api: await statusOf('/api/credentials/everything/TOKEN'), other: await statusOf('/connect/github'), list: await statusOf('/api/credentials') },
        { connect: 200, api: 200, other: 401, list: 401 },
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('an unreachable issuer is unavailable (503), not the client\'s fault', async () => {
    const auth = createAuthenticator([{ type: 'jwt', issuer: 'http://127.0.0.1:1' }], { logger: silentLogger() });
    const token = await new SignJWT({ sub: 'x', aud: RESOURCE }).setProtectedHeader({ alg: 'RS256', kid: 'k' }).setIssuer('http://127.0.0.1:1').setExpirationTime('5m').sign(await importJWK(issuer.keys[0]!, 'RS256'));
    assert.equal((await check(auth, token)).kind, 'unavailable');
  });
});
