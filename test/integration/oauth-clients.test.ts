// berth's client identity towards an authorization server (static clients
// with client_secret_basic and client_secret_post), the checks that refuse an
// authorization (no PKCE S256, a mismatched `iss`, a private address without
// allowPrivateNetworks), an upstream's 401 challenge as the trigger, and the
// URL elicitation a 2025-11-25 client gets. Real oidc-provider, real SDK parts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { continueUrl, signIn, startIssuer } from '../helpers/oidc.ts';
import { arrive as arriveAs, consent as consentAs, pressAuthorize as press, whoami as whoamiAs } from '../helpers/oauth-flow.ts';
import type { ProtectedServer } from '../helpers/protected-server.ts';
import { startProtectedServer } from '../helpers/protected-server.ts';

const KEY = 'berth_ada-0123456789abcdef-oauth-clients';
const AUTH = { 'x-api-key': KEY };
const ROOT = { 'x-api-key': 'berth_root-0123456789abcdef-oauth-clients' };
const CIMD = 'https://berth.example.com/oauth/client-metadata.json';
/** berth's public URL: the authorization servers send the browser there; the test carries it on to berth's real address. */
const PUBLIC = 'http://berth.test';
const CALLBACK = `${PUBLIC}/oauth/callback`;
const SECRET = 'static-secret-static-secret-0000';

function staticClient(id: string, method: string): Record<string, unknown> {
  return { client_id: id, client_secret: SECRET, redirect_uris: [CALLBACK], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: method };
}

function pressAuthorize(base: string, server: string): Promise<Response> {
  return press(base, server, AUTH);
}

function consent(base: string, server: string): Promise<URL> {
  return consentAs(base, server, AUTH, 'ada', CALLBACK);
}

function arrive(base: string, callback: URL): Promise<Response> {
  return arriveAs(base, callback, AUTH);
}

function whoami(base: string, server: string): Promise<string> {
  return whoamiAs(base, server, AUTH);
}

describe('upstream OAuth: client identities and the checks that refuse an authorization', () => {
  let issuer: TestIssuer;
  let plainIssuer: TestIssuer;
  let upstream: ProtectedServer;
  let plainUpstream: ProtectedServer;
  let writeUpstream: ProtectedServer;
  let cimdIssuer: TestIssuer;
  let cimdUpstream: ProtectedServer;
  let modernUpstream: ProtectedServer;
  let b: TestBerth;
  let stateDir: string;

  before(async () => {
    issuer = await startIssuer({ interactive: true, refresh: true, clients: [staticClient('berth-basic', 'client_secret_basic'), staticClient('berth-post', 'client_secret_post')] });
    // An authorization server whose metadata leaves PKCE out.
    plainIssuer = await startIssuer({ interactive: true, metadata: (doc) => ({ ...doc, code_challenge_methods_supported: undefined }) });
    // One that says it takes Client ID Metadata Documents.
    cimdIssuer = await startIssuer({ interactive: true, metadata: (doc) => ({ ...doc, client_id_metadata_document_supported: true }) });
    cimdUpstream = await startProtectedServer(cimdIssuer.issuer);
    upstream = await startProtectedServer(issuer.issuer);
    plainUpstream = await startProtectedServer(plainIssuer.issuer);
    writeUpstream = await startProtectedServer(issuer.issuer, { requireScope: 'mcp:write' });
    modernUpstream = await startProtectedServer(issuer.issuer, { modern: true });
    stateDir = mkdtempSync(path.join(tmpdir(), 'berth-oauth-'));
    const oauth = (extra: string): string => `{ allowPrivateNetworks: true${extra} }`;
    const servers = [
      ['basic', upstream.url, oauth(`, clientId: berth-basic, clientSecret: ${SECRET}, tokenEndpointAuthMethod: client_secret_basic`)],
      ['post', upstream.url, oauth(`, clientId: berth-post, clientSecret: ${SECRET}, tokenEndpointAuthMethod: client_secret_post`)],
      ['registered', upstream.url, oauth('')],
      ['nopkce', plainUpstream.url, oauth('')],
      ['wide', writeUpstream.url, oauth('')],
      ['team', upstream.url, oauth(', perUser: false')],
      ['cimd', cimdUpstream.url, oauth(`, clientMetadataUrl: ${CIMD}`)],
      ['modern', modernUpstream.url, oauth('')],
    ]
      .map(([name, url, o]) => `  ${name}:\n    type: remote\n    url: ${url}\n    oauth: ${o}\n`)
      .join('');
    // No oauth block: discovery only after the upstream's 401, and no private addresses.
    const open = `  open:\n    type: remote\n    url: ${upstream.url}\n`;
    b = await startTestBerth(
      servers + open,
      `listen: { host: 127.0.0.1, port: 0, publicUrl: ${PUBLIC} }\nstate: { path: ${JSON.stringify(path.join(stateDir, 'state.json'))}, key: "0123456789abcdef0123456789abcdef-clients" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: ada, key: "${KEY}" }\n      - { user: root, groups: [admin], key: "${ROOT['x-api-key']}" }\n`,
    );
  });
  after(async () => {
    await b?.stop();
    await upstream?.stop();
    await plainUpstream?.stop();
    await writeUpstream?.stop();
    await cimdUpstream?.stop();
    await modernUpstream?.stop();
    await cimdIssuer?.stop();
    await issuer?.stop();
    await plainIssuer?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  for (const server of ['basic', 'post']) {
    test(`a static client with client_secret_${server} gets a token the server accepts`, async () => {
      const callback = await consent(b.url, server);
      assert.equal(callback.searchParams.get('iss'), issuer.issuer, 'the authorization server sends iss (RFC 9207)');
      const done = await arrive(b.url, callback);
      assert.equal(done.status, 303, await done.text());
      assert.equal(await whoami(b.url, server), `sub=ada aud=${upstream.url}`);
    });
  }

  test('the authorization request carries PKCE S256, state, resource and the exact redirect URI; one registration serves repeated authorizations', async () => {
    const registrations = (): number => issuer.hits.get('/reg') ?? 0;
    const before = registrations();
    const first = await pressAuthorize(b.url, 'registered');
    const second = await pressAuthorize(b.url, 'registered');
    assert.equal(registrations() - before, 1, 'registered once per (server, issuer)');
    const url = new URL(continueUrl(await first.text()) ?? '');
    assert.equal(url.origin, issuer.issuer);
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.equal(url.searchParams.get('resource'), upstream.url);
    assert.equal(url.searchParams.get('redirect_uri'), CALLBACK);
    assert.equal(url.searchParams.get('scope'), 'mcp:read', 'the resource metadata\'s scopes_supported');
    assert.notEqual(url.searchParams.get('state'), new URL(continueUrl(await second.text()) ?? '').searchParams.get('state'));
  });

  test('a callback whose iss names another issuer, or leaves it out, is refused and stores nothing', async () => {
    for (const edit of [(u: URL) => u.searchParams.set('iss', 'http://127.0.0.1:1'), (u: URL) => u.searchParams.delete('iss')]) {
      const callback = await consent(b.url, 'registered');
      edit(callback);
      const res = await arrive(b.url, callback);
      assert.equal(res.status, 400);
      assert.match(await res.text(), /did not come from/);
    }
    await assert.rejects(connectClient(b.url, 'registered', {}, AUTH), /connect\/registered to authorize/);
  });

  test('a callback replayed, or for a state berth never issued, is refused', async () => {
    const callback = await consent(b.url, 'registered');
    assert.equal((await arrive(b.url, callback)).status, 303);
    const again = await arrive(b.url, callback);
    assert.equal(again.status, 400);
    assert.match(await again.text(), /unknown or expired/);
  });

  test('an authorization server that does not advertise S256 is refused before the user is sent anywhere', async () => {
    const res = await pressAuthorize(b.url, 'nopkce');
    assert.equal(res.status, 502);
    assert.match(await res.text(), /does not advertise PKCE with S256/);
    assert.equal(plainIssuer.hits.get('/auth') ?? 0, 0);
  });

  test('an upstream 401 Bearer challenge starts the flow for a server without an oauth block; its loopback authorization server is refused by the SSRF guard', async () => {
    await assert.rejects(connectClient(b.url, 'open', {}, AUTH), /open http:\/\/berth\.test\/connect\/open to authorize/);
    const res = await pressAuthorize(b.url, 'open');
    assert.equal(res.status, 502);
    assert.match(await res.text(), /refused to fetch http:\/\/127\.0\.0\.1:\d+: OAuth endpoints must be https/);
  });

  test('a 403 insufficient_scope asks the user again, and the new authorization asks for the challenge\'s scope (step-up)', async () => {
    const first = await arrive(b.url, await consent(b.url, 'wide'));
    assert.equal(first.status, 303, await first.text());
    await assert.rejects(whoami(b.url, 'wide'), /open http:\/\/berth\.test\/connect\/wide to authorize/);
    const start = await pressAuthorize(b.url, 'wide');
    const asked = new URL(continueUrl(await start.text()) ?? '');
    assert.equal(asked.searchParams.get('scope'), 'mcp:read mcp:write');
    const callback = await signIn(asked, 'ada', CALLBACK);
    assert.equal((await arrive(b.url, callback)).status, 303);
    assert.equal(await whoami(b.url, 'wide'), `sub=ada aud=${writeUpstream.url}`);
  });

  test('perUser: false: only the admin group authorizes, and everyone\'s calls use that one token', async () => {
    const page = await (await fetch(`${b.url}/connect/team`, { headers: AUTH })).text();
    assert.match(page, /Only a member of the admin group can change it/);
    assert.doesNotMatch(page, /value="authorize"/);
    const callback = await consentAs(b.url, 'team', ROOT, 'root', CALLBACK);
    assert.equal((await arriveAs(b.url, callback, ROOT)).status, 303);
    assert.equal(await whoami(b.url, 'team'), `sub=root aud=${upstream.url}`, 'ada\'s call carries the shared token');
  });

  test('an authorization server that takes Client ID Metadata Documents gets clientMetadataUrl as the client_id, and nothing is registered', async () => {
    const registrations = cimdIssuer.hits.get('/reg') ?? 0;
    const start = await pressAuthorize(b.url, 'cimd');
    const asked = new URL(continueUrl(await start.text()) ?? assert.fail('no link onwards'));
    assert.equal(asked.searchParams.get('client_id'), CIMD);
    assert.equal(cimdIssuer.hits.get('/reg') ?? 0, registrations);
  });

  test('a 2025-11-25 client that declares URL elicitation is asked with -32042 naming the /connect page', async () => {
    await assert.rejects(connectClient(b.url, 'nopkce', { elicitation: { url: {} } }, AUTH), (err: unknown) => {
      assert.ok(err instanceof McpError, String(err));
      assert.equal(err.code, -32042);
      const data = err.data as { elicitations?: { mode: string; url: string }[] };
      assert.equal(data.elicitations?.[0]?.mode, 'url');
      // The page, with the one-time ticket that opens it in the user's browser.
      assert.match(data.elicitations?.[0]?.url ?? '', new RegExp(`^${PUBLIC}/connect/nopkce\\?ticket=[\\w.-]+$`));
      return true;
    });
  });

  test('a 2026-07-28 client is asked with an input_required URL elicitation on tools/call, authorizes, and its retry carries the token; server/discover and tools/list get the plain error', async () => {
    const envelope = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } };
    // The revision allows input_required only on tools/call, prompts/get and resources/read, and has no -32042.
    for (const method of ['server/discover', 'tools/list']) {
      const res = await fetch(`${b.url}/mcp/modern`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': method },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { _meta: envelope } }),
      });
      const body = (await res.json()) as { result?: unknown; error?: { code: number; message: string } };
      assert.equal(body.result, undefined, `${method}: ${JSON.stringify(body)}`);
      assert.equal(body.error?.code, -32000);
      assert.match(body.error?.message ?? '', /open http:\/\/berth\.test\/connect\/modern to authorize/);
    }
    const client = new ModernClient({ name: 'modern', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
    const asked: Record<string, unknown>[] = [];
    client.setRequestHandler('elicitation/create' as never, (async (request: { params: Record<string, unknown> }) => {
      asked.push(request.params);
      // The person opens the page and authorizes; then the client retries.
      assert.equal((await arrive(b.url, await consent(b.url, 'modern'))).status, 303);
      return { action: 'accept' };
    }) as never);
    const transport = new ModernTransport(new URL(`${b.url}/mcp/modern`), { requestInit: { headers: AUTH } });
    // What the client learnt of the server before (discovery needs the token too): no round trip now.
    await client.connect(transport, { prior: { kind: 'modern', discover: { resultType: 'complete', supportedVersions: ['2026-07-28'], capabilities: { tools: {} }, ttlMs: 0, cacheScope: 'private' } as never } });
    try {
      const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: { text: string }[] };
      assert.equal(result.content[0]?.text, `sub=ada aud=${modernUpstream.url}`);
      assert.equal(asked.length, 1);
      assert.equal(asked[0]?.mode, 'url');
      assert.equal(asked[0]?.elicitationId, undefined, '2026-07-28 removed elicitationId');
      assert.match(String(asked[0]?.url), new RegExp(`^${PUBLIC}/connect/modern\\?ticket=[\\w.-]+$`));
    } finally {
      await client.close();
    }
  });
});
