// Discovery paths the main flow tests do not take: the resource metadata named
// only by the upstream's challenge, a server of the 2025-03-26 era without
// resource metadata (authorization server metadata at its origin, else the
// default endpoints there), and an authorization server that refuses the
// server's URL as a resource (RFC 8707 invalid_target). Real oidc-provider.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { discover, parseBearerChallenge } from '../../src/oauth/discovery.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { startTestBerth } from '../helpers/berth.ts';
import type { OAuthRig } from '../helpers/oauth-flow.ts';
import { arrive, consent, pressAuthorize, startOAuthRig } from '../helpers/oauth-flow.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { continueUrl, startIssuer } from '../helpers/oidc.ts';
import type { ProtectedServer } from '../helpers/protected-server.ts';
import { startProtectedServer } from '../helpers/protected-server.ts';

const KEY = 'berth_ada-0123456789abcdef-oauth-disc';
const AUTH = { 'x-api-key': KEY };
const STATE_KEY = '0123456789abcdef0123456789abcdef-disc';

function head(stateDir: string): string {
  return `state: { path: ${JSON.stringify(path.join(stateDir, 'state.json'))}, key: "${STATE_KEY}" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: ada, key: "${KEY}" }\n`;
}

describe('upstream OAuth: an authorization server that refuses the resource', () => {
  let rig: OAuthRig;
  let refused = '';

  before(async () => {
    rig = await startOAuthRig({ interactive: true, refresh: true, refuseResource: (resource) => resource === refused }, head);
    refused = rig.upstream.url;
  });
  after(() => rig?.stop());

  test('invalid_target is shown as such, naming the resource berth asked for; nothing is stored', async () => {
    const callback = await consent(rig.berth.url, 'notes', AUTH, 'ada');
    assert.equal(callback.searchParams.get('error'), 'invalid_target');
    const done = await arrive(rig.berth.url, callback, AUTH);
    const page = await done.text();
    assert.equal(done.status, 400, page);
    assert.ok(page.includes(`refuses the resource ${rig.upstream.url} (invalid_target: ${rig.upstream.url} is not a resource of this server)`), page);
    assert.match(await (await fetch(`${rig.berth.url}/connect/notes`, { headers: AUTH })).text(), /Not connected/);
  });
});

describe('upstream OAuth: discovery from the resource metadata the challenge names', () => {
  let issuer: TestIssuer;
  let upstream: ProtectedServer;

  before(async () => {
    issuer = await startIssuer();
    // The metadata is only where the challenge says, not at either well-known URL.
    upstream = await startProtectedServer(issuer.issuer, { metadataAt: '/meta/notes-resource.json' });
  });
  after(async () => {
    await upstream?.stop();
    await issuer?.stop();
  });

  test('the challenge\'s resource_metadata leads to the authorization server; without it the well-known URLs find none', async () => {
    const res = await fetch(upstream.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' });
    assert.equal(res.status, 401);
    const challenge = parseBearerChallenge(res.headers.get('www-authenticate') ?? undefined) ?? assert.fail('no Bearer challenge');
    assert.equal(challenge.resourceMetadata, `${new URL(upstream.url).origin}/meta/notes-resource.json`);
    const policy = { allowPrivateNetworks: true };
    const found = await discover(upstream.url, challenge, undefined, policy);
    assert.equal(found.as.issuer, issuer.issuer);
    assert.equal(found.resource, upstream.url);
    assert.deepEqual(found.scopesSupported, ['mcp:read']);
    // Without the challenge the server looks like one of the 2025-03-26 era: its own origin is taken for the authorization server.
    const blind = await discover(upstream.url, undefined, undefined, policy);
    assert.equal(blind.as.issuer, new URL(upstream.url).origin);
  });
});

/** A 2025-03-26 server: no resource metadata; optionally authorization server metadata at its own origin; registration there. */
async function startLegacyServer(withMetadata: boolean): Promise<{ url: string; paths: string[]; server: Server }> {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const at = (req.url ?? '/').split('?')[0] ?? '/';
    paths.push(at);
    if (at === '/mcp') return void res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
    if (at === '/.well-known/oauth-authorization-server' && withMetadata) {
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: origin, authorization_endpoint: `${origin}/oauth/authorize`, token_endpoint: `${origin}/oauth/token`, registration_endpoint: `${origin}/oauth/register`, code_challenge_methods_supported: ['S256'] }));
    }
    if (req.method === 'POST' && at === (withMetadata ? '/oauth/register' : '/register')) {
      return void res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ client_id: `legacy-${withMetadata ? 'meta' : 'defaults'}`, token_endpoint_auth_method: 'none' }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, paths, server };
}

describe('upstream OAuth: a server of the 2025-03-26 era without resource metadata', () => {
  let plain: Awaited<ReturnType<typeof startLegacyServer>>;
  let described: Awaited<ReturnType<typeof startLegacyServer>>;
  let stateDir: string;
  let b: TestBerth;

  before(async () => {
    plain = await startLegacyServer(false);
    described = await startLegacyServer(true);
    stateDir = mkdtempSync(path.join(tmpdir(), 'berth-oauth-'));
    const remote = (name: string, url: string): string => `  ${name}:\n    type: remote\n    url: ${url}\n    oauth: { allowPrivateNetworks: true }\n`;
    b = await startTestBerth(remote('plain', plain.url) + remote('described', described.url), head(stateDir));
  });
  after(async () => {
    await b?.stop();
    rmSync(stateDir, { recursive: true, force: true });
    for (const s of [plain?.server, described?.server]) await new Promise<void>((resolve) => (s === undefined ? resolve() : s.close(() => resolve())));
  });

  const authorizationUrl = async (server: string): Promise<URL> => {
    const res = await pressAuthorize(b.url, server, AUTH);
    const page = await res.text();
    assert.equal(res.status, 200, page);
    return new URL(continueUrl(page) ?? assert.fail(`no link onwards in ${page}`));
  };

  test('the authorization server metadata at the server\'s origin is used', async () => {
    const url = await authorizationUrl('described');
    const origin = new URL(described.url).origin;
    assert.equal(`${url.origin}${url.pathname}`, `${origin}/oauth/authorize`);
    assert.equal(url.searchParams.get('client_id'), 'legacy-meta');
    assert.equal(url.searchParams.get('resource'), described.url);
    assert.deepEqual(described.paths, ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource', '/.well-known/oauth-authorization-server', '/oauth/register']);
  });

  test('without any metadata, the default /authorize and /register at the server\'s origin', async () => {
    const url = await authorizationUrl('plain');
    const origin = new URL(plain.url).origin;
    assert.equal(`${url.origin}${url.pathname}`, `${origin}/authorize`);
    assert.equal(url.searchParams.get('client_id'), 'legacy-defaults');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.deepEqual(plain.paths, ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource', '/.well-known/oauth-authorization-server', '/.well-known/openid-configuration', '/register']);
  });
});
