// Downstream auth end to end: a real berth with apiKey, jwt and header
// providers, a real authorization server (oidc-provider) minting tokens for
// berth's route URLs, the SDK client (with and without its OAuth provider),
// a real server-everything behind it, and a remote upstream that records what
// berth forwards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { importJWK, SignJWT } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { sha256Hex } from '../../src/auth/api-key.ts';
import { fetchStatus } from '../../src/cli/status.ts';
import type { BerthError } from '../../src/errors.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingYaml, recordingUpstream, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { CLIENT, startIssuer } from '../helpers/oidc.ts';

const KEYS = { alice: 'berth_alice-key-0123456789abcdef', bob: 'berth_bob-key-0123456789abcdefgh', carol: 'carol-key-0123456789abcdefghij', root: 'berth_root-key-0123456789abcdefg' };
const ACCEPT = 'application/json, text/event-stream';
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
const MODERN = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } } };

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers }, body: JSON.stringify(body) });
}

const apiKey = (who: keyof typeof KEYS): Record<string, string> => ({ 'x-api-key': KEYS[who] });
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function connectAs(url: string, headers: Record<string, string>): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'auth-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return { client, transport };
}

describe('downstream auth', () => {
  let issuer: TestIssuer;
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  let b: TestBerth;
  let mcp: (server: string) => string;

  before(async () => {
    issuer = await startIssuer();
    upstream = await recordingUpstream();
    const auth = `auth:
  - type: apiKey
    keys:
      - { user: alice, groups: [eng], sha256: "${sha256Hex(KEYS.alice)}" }
      - { user: bob, groups: [eng], key: "${KEYS.bob}" }
      - { user: carol, groups: [ops], sha256: "${sha256Hex(KEYS.carol)}" }
      - { user: root, groups: [admin], sha256: "${sha256Hex(KEYS.root)}" }
  - type: jwt
    issuer: ${issuer.issuer}
  - type: header
    trustedProxies: [127.0.0.1/32]
`;
    const servers = `${everythingYaml()}  dev:
    type: composite
    components:
      - server: everything
        prefix: e_
        tools: { include: [echo] }
      - server: everything
        prefix: x_
        tools: { include: [get-sum] }
        access: { groups: [ops] }
  scoped:
    type: composite
    access: { scopes: [mcp:write] }
    components:
      - server: everything
        tools: { include: [echo] }
  remote:
    type: remote
    url: ${upstream.url}
`;
    b = await startTestBerth(servers, auth);
    mcp = (server) => `${b.url}/mcp/${server}`;
  });
  after(async () => {
    await b?.stop();
    await issuer?.stop();
    upstream?.server.close();
  });

  test('no credential: 401 pointing at the route metadata, whose resource is the URL used', async () => {
    const res = await post(mcp('everything'), INIT);
    assert.equal(res.status, 401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer resource_metadata="([^"]+)"/);
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)![1]!;
    assert.equal(metadataUrl, `${b.url}/.well-known/oauth-protected-resource/mcp/everything`);
    assert.doesNotMatch(challenge, /error=/, 'no error code when no credential was sent (RFC 6750 3.1)');
    const metadata = (await (await fetch(metadataUrl)).json()) as Record<string, unknown>;
    assert.equal(metadata['resource'], mcp('everything'));
    assert.deepEqual(metadata['authorization_servers'], [issuer.issuer]);
    const scoped = (await (await fetch(`${b.url}/.well-known/oauth-protected-resource/mcp/scoped`)).json()) as Record<string, unknown>;
    assert.deepEqual(scoped['scopes_supported'], ['mcp:write']);
    assert.equal((await fetch(`${b.url}/.well-known/oauth-protected-resource/mcp/nope`)).status, 404);
  });

  describe('jwt', () => {
    const cases: { name: string; token: () => Promise<string>; server?: string; status: number; error?: string; message?: RegExp }[] = [
      { name: 'valid token for the route', token: () => issuer.token(mcp('everything')), status: 200 },
      { name: 'token minted for another route', token: () => issuer.token(mcp('dev')), status: 401, error: 'invalid_token', message: /another resource/ },
      { name: 'wrong audience', token: () => mint({ aud: 'https://elsewhere.example/mcp/everything' }), status: 401, error: 'invalid_token', message: /another resource/ },
      { name: 'expired', token: () => mint({ exp: Math.floor(Date.now() / 1000) - 300 }), status: 401, error: 'invalid_token', message: /expired/ },
      { name: 'not valid yet', token: () => mint({ nbf: Math.floor(Date.now() / 1000) + 600 }), status: 401, error: 'invalid_token', message: /nbf/ },
      { name: 'wrong issuer', token: () => mint({ iss: 'http://127.0.0.1:1/other-issuer' }), status: 401, error: 'invalid_token', message: /not recognised/ },
      { name: 'alg none', token: async () => unsigned({ iss: issuer.issuer, aud: mcp('everything'), sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 }), status: 401, error: 'invalid_token', message: /unsigned/ },
      { name: 'signed by a key the issuer never published', token: () => mint({}, 'key-unknown'), status: 401, error: 'invalid_token', message: /no signing key/ },
      { name: 'missing scope', token: () => issuer.token(mcp('scoped'), 'mcp:read'), server: 'scoped', status: 403, error: 'insufficient_scope', message: /mcp:write/ },
      { name: 'scope present', token: () => issuer.token(mcp('scoped'), 'mcp:read mcp:write'), server: 'scoped', status: 200 },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const res = await post(mcp(c.server ?? 'everything'), INIT, bearer(await c.token()));
        assert.equal(res.status, c.status, await res.clone().text());
        if (c.error !== undefined) {
          const challenge = res.headers.get('www-authenticate') ?? '';
          assert.match(challenge, new RegExp(`error="${c.error}"`));
          assert.match(challenge, /resource_metadata="/);
          if (c.error === 'insufficient_scope') assert.match(challenge, /scope="mcp:write"/);
          assert.doesNotMatch(challenge, /offline_access/);
        }
        if (c.message !== undefined) assert.match(((await res.json()) as { error: { message: string } }).error.message, c.message);
      });
    }

    /** A token signed with the issuer's own key, with claims overridden. */
    async function mint(claims: Record<string, unknown>, kid?: string): Promise<string> {
      const jwk = issuer.keys[0]!;
      const key = await importJWK(jwk, 'RS256');
      const now = Math.floor(Date.now() / 1000);
      const payload = { iss: issuer.issuer, aud: mcp('everything'), sub: 'agent', iat: now, exp: now + 600, scope: 'mcp:read', ...claims };
      return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: kid ?? jwk.kid!, typ: 'at+jwt' }).sign(key);
    }

    function unsigned(payload: Record<string, unknown>): string {
      const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
      return `${part({ alg: 'none', typ: 'JWT' })}.${part(payload)}.`;
    }

    test('the SDK client finds its way: 401 → metadata → authorization server → token, no hand-written steps', async () => {
      const authProvider = new ClientCredentialsProvider({ clientId: CLIENT.id, clientSecret: CLIENT.secret, scope: 'mcp:read mcp:write', expectedIssuer: issuer.issuer });
      const client = new Client({ name: 'oauth-client', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(mcp('scoped')), { authProvider }));
      const tools = await client.listTools();
      assert.deepEqual(tools.tools.map((t) => t.name), ['echo']);
      assert.ok(authProvider.tokens()?.access_token, 'the client obtained a token itself');
      await client.close();
    });
  });

  describe('apiKey and header', () => {
    test('X-API-Key and Authorization: Bearer both carry a key; a wrong key is 401 invalid_token', async () => {
      assert.equal((await post(mcp('everything'), INIT, apiKey('alice'))).status, 200);
      assert.equal((await post(mcp('everything'), INIT, bearer(KEYS.carol))).status, 200, 'a key without berth_ prefix as a bearer token');
      const wrong = await post(mcp('everything'), INIT, { 'x-api-key': 'berth_not-a-key-0123456789abcdef' });
      assert.equal(wrong.status, 401);
      assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    });

    test('an identity header from a trusted proxy address names the user', async () => {
      const { client } = await connectAs(mcp('dev'), { 'x-forwarded-user': 'dave', 'x-forwarded-groups': 'ops, eng' });
      const names = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(names, ['e_echo', 'x_get-sum'], 'dave is in ops');
      await client.close();
    });

    test('a composite lists only the tools of components the caller may reach, and refuses the others', async () => {
      const { client } = await connectAs(mcp('dev'), apiKey('alice'));
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['e_echo']);
      await assert.rejects(client.callTool({ name: 'x_get-sum', arguments: { a: 1, b: 2 } }), /Unknown tool/);
      await client.close();
      const ops = await connectAs(mcp('dev'), apiKey('carol'));
      assert.deepEqual((await ops.client.listTools()).tools.map((t) => t.name).sort(), ['e_echo', 'x_get-sum']);
      await ops.client.close();
    });

    test('/status and /metrics need the admin group', async () => {
      for (const path of ['/status', '/metrics']) {
        assert.equal((await fetch(`${b.url}${path}`)).status, 401, `${path} without credential`);
        assert.equal((await fetch(`${b.url}${path}`, { headers: apiKey('alice') })).status, 403, `${path} as alice`);
        assert.equal((await fetch(`${b.url}${path}`, { headers: apiKey('root') })).status, 200, `${path} as root`);
      }
    });

    test('berth status sends BERTH_TOKEN, and says what to set when it is missing or not an admin', async () => {
      await assert.rejects(fetchStatus(b.url, undefined), (err: BerthError) => err.code === 'status_unauthorized' && /needs credentials.*set BERTH_TOKEN/.test(err.message));
      await assert.rejects(fetchStatus(b.url, KEYS.alice), (err: BerthError) => err.code === 'status_unauthorized' && /admin group/.test(err.message));
      await assert.rejects(fetchStatus(b.url, 'berth_not-a-key-0123456789abcdef'), /refused the credentials in BERTH_TOKEN/);
      const report = await fetchStatus(b.url, KEYS.root);
      assert.ok(report.servers.some((s) => s.name === 'everything'));
    });

    test("the client's credentials never reach a remote upstream", async () => {
      const res = await post(mcp('remote'), INIT, { ...bearer(KEYS.alice), 'x-api-key': KEYS.alice });
      assert.equal(res.status, 200);
      const headers = upstream.seen.at(-1)!;
      assert.equal(headers.authorization, undefined);
      assert.equal(headers['x-api-key'], undefined);
    });
  });

  describe('identity binding', () => {
    test("bob presenting alice's session id gets 404, on POST, GET and DELETE", async () => {
      const { client, transport } = await connectAs(mcp('everything'), apiKey('alice'));
      const id = transport.sessionId!;
      const asBob = { ...apiKey('bob'), 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' };
      assert.equal((await post(mcp('everything'), { jsonrpc: '2.0', id: 2, method: 'tools/list' }, asBob)).status, 404);
      assert.equal((await fetch(mcp('everything'), { headers: { ...asBob, accept: 'text/event-stream' } })).status, 404);
      assert.equal((await fetch(mcp('everything'), { method: 'DELETE', headers: asBob })).status, 404);
      assert.ok((await client.listTools()).tools.length > 0, "alice's session is untouched");
      await client.close();
    });

    test("bob posting to alice's legacy SSE session gets 404", async () => {
      const transport = new SSEClientTransport(new URL(`${b.url}/sse/everything`), { requestInit: { headers: apiKey('alice') }, eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...init?.headers, ...apiKey('alice') } }) } });
      const client = new Client({ name: 'sse', version: '1.0.0' });
      await client.connect(transport);
      // The SDK keeps the message endpoint (which names the session) to itself.
      const endpoint = (transport as unknown as { _endpoint: URL })._endpoint;
      assert.ok(endpoint.searchParams.get('sessionId'), 'the session id is known');
      assert.equal((await post(endpoint.href, { jsonrpc: '2.0', id: 8, method: 'ping' }, apiKey('alice'))).status, 202, 'alice may post to her session');
      const res = await post(endpoint.href, { jsonrpc: '2.0', id: 9, method: 'ping' }, apiKey('bob'));
      assert.equal(res.status, 404);
      await client.ping();
      await client.close();
    });

    test("bob presenting alice's requestState gets 404; alice resumes it", async () => {
      const call = (id: number, params: Record<string, unknown>, who: keyof typeof KEYS): Promise<Response> =>
        post(mcp('everything'), { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'trigger-elicitation-request', arguments: {}, _meta: MODERN, ...params } }, {
          ...apiKey(who),
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'trigger-elicitation-request',
        });
      const first = (await (await call(1, {}, 'alice')).json()) as { result: { resultType: string; requestState: string; inputRequests: Record<string, unknown> } };
      assert.equal(first.result.resultType, 'input_required');
      const [key] = Object.keys(first.result.inputRequests);
      const inputResponses = { [key!]: { action: 'accept', content: { name: 'Ada', check: true, email: 'ada@example.com', integer: 1, number: 1, untitledSingleSelectEnum: 'option1', titledSingleSelectEnum: 'value1', legacyTitledEnum: 'opt1', untitledMultipleSelectEnum: ['option1'], titledMultipleSelectEnum: ['value1'] } } };
      const stolen = await call(2, { requestState: first.result.requestState, inputResponses }, 'bob');
      assert.equal(stolen.status, 404);
      const resumed = (await (await call(3, { requestState: first.result.requestState, inputResponses }, 'alice')).json()) as { result: { resultType: string; content: { text: string }[] } };
      assert.equal(resumed.result.resultType, 'complete');
      assert.match(resumed.result.content.map((c) => c.text).join(''), /Ada/);
    });
  });
});
