// berth as each user's OAuth client beyond passed-through remotes: a server
// berth hosts itself (a local process speaking streamable HTTP that takes
// only tokens for the resource its metadata advertises), an SSE remote, and
// a token the upstream refuses although berth still holds it (refreshed once
// and the request sent once more). Real oidc-provider, real SDK servers, the
// SDK client through berth; the person's part played with fetch.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, repoRoot, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { continueUrl, startIssuer } from '../helpers/oidc.ts';
import { authorize as authorizeAs, pressAuthorize, whoami as whoamiAs } from '../helpers/oauth-flow.ts';
import type { ProtectedServer } from '../helpers/protected-server.ts';
import { startProtectedServer } from '../helpers/protected-server.ts';

const KEY = 'berth_ada-0123456789abcdef-oauth-hosted';
const AUTH = { 'x-api-key': KEY };
const BOB = { 'x-api-key': 'berth_bob-0123456789abcdef-oauth-hosted' };
const TINY = path.join(repoRoot, 'test/fixtures/children/tiny-mcp.sh');
const STATE_KEY = '0123456789abcdef0123456789abcdef-hosted';
const FIXTURE = path.join(repoRoot, 'test/fixtures/children/protected-server.ts');
/** What the hosted server calls itself: not the loopback address berth reaches it at. */
const RESOURCE = 'https://notes.hosted.example/mcp';

function head(stateDir: string): string {
  return `state: { path: ${JSON.stringify(path.join(stateDir, 'state.json'))}, keys: ["${STATE_KEY}"] }\nauth:\n  - type: apiKey\n    keys:\n      - { user: ada, key: "${KEY}" }\n      - { user: bob, key: "${BOB['x-api-key']}" }\n`;
}

function hosted(name: string, issuer: string, type = 'multi-user', oauth = '\n    oauth: { allowPrivateNetworks: true }'): string {
  return `  ${name}:
    type: ${type}
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(FIXTURE)}]
    transport: streamable-http
    path: /mcp
    env: { ISSUER: "${issuer}", RESOURCE: "${RESOURCE}" }${oauth}
`;
}

function whoami(base: string, server: string): Promise<string> {
  return whoamiAs(base, server, AUTH);
}

describe('upstream OAuth for a hosted server, an SSE remote, and a token refused after berth sent it', () => {
  let issuer: TestIssuer;
  let sse: ProtectedServer;
  let notes: ProtectedServer;
  let b: TestBerth;
  let stateDir: string;
  const grants = (): number => issuer.hits.get('/token') ?? 0;

  before(async () => {
    issuer = await startIssuer({ interactive: true, refresh: true });
    sse = await startProtectedServer(issuer.issuer, { sse: true });
    notes = await startProtectedServer(issuer.issuer);
    stateDir = mkdtempSync(path.join(tmpdir(), 'berth-oauth-hosted-'));
    const servers = `${hosted('hosted', issuer.issuer)}${hosted('mine', issuer.issuer, 'single-user')}${hosted('plain', issuer.issuer, 'multi-user', '')}  sse:\n    type: remote\n    transport: sse\n    url: ${sse.url}\n    oauth: { allowPrivateNetworks: true }\n  bare:\n    type: remote\n    transport: sse\n    url: ${sse.url}\n  notes:\n    type: remote\n    url: ${notes.url}\n    oauth: { allowPrivateNetworks: true }\n  tiny:\n    type: multi-user\n    runtime: command\n    command: sh\n    args: [${JSON.stringify(TINY)}]\n  dev:\n    type: composite\n    components:\n      - { server: notes, prefix: n_ }\n      - { server: tiny, prefix: t_ }\n`;
    b = await startTestBerth(servers, head(stateDir));
  });

  after(async () => {
    await b?.stop();
    await sse?.stop();
    await notes?.stop();
    await issuer?.stop();
    if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
  });

  test('a hosted server without an oauth block that answers 401 gets the flow: its metadata is read at the instance, its loopback authorization server is refused by the SSRF guard', async () => {
    // First, right after berth started: the instance may not have answered berth's own connection yet.
    await assert.rejects(connectClient(b.url, 'plain', {}, AUTH), /open .*\/connect\/plain to authorize/);
    const res = await pressAuthorize(b.url, 'plain', AUTH);
    assert.equal(res.status, 502);
    // The refusal names the authorization server (found in the instance's metadata), not the instance.
    assert.match(await res.text(), new RegExp(`refused to fetch ${issuer.issuer}: OAuth endpoints must be https`));
    // berth oauth status reads this: the server challenged berth, and discovery stopped at the guard.
    const status = (await (await fetch(`${b.url}/api/oauth/plain`, { headers: AUTH })).json()) as { mode: string; connected: boolean; discovery?: { error?: { code: string } } };
    assert.equal(status.mode, 'challenged');
    assert.equal(status.connected, false);
    assert.equal(status.discovery?.error?.code, 'oauth_url_refused');
  });

  test('a hosted server that answers 401: the user is sent to /connect, authorizes, and calls carry a token for the resource it advertises', async () => {
    await assert.rejects(connectClient(b.url, 'hosted', {}, AUTH), (err: unknown) => {
      assert.ok(err instanceof McpError, String(err));
      assert.match(err.message, new RegExp(`server hosted needs your authorization at its OAuth authorization server: open ${b.url}/connect/hosted to authorize`));
      return true;
    });
    const start = await pressAuthorize(b.url, 'hosted', AUTH);
    const page = await start.text();
    assert.equal(start.status, 200, page);
    const asked = new URL(continueUrl(page) ?? assert.fail(`no link onwards in ${page}`));
    assert.equal(asked.searchParams.get('resource'), RESOURCE, 'the resource is the one the server advertises, not the loopback address berth reaches it at');
    const done = await authorizeAs(b.url, 'hosted', AUTH, 'ada');
    assert.equal(done.status, 303, done.page);
    assert.equal(await whoami(b.url, 'hosted'), `sub=ada aud=${RESOURCE}`);
    // Another user on the same instance authorizes for themselves and never gets ada's token.
    await assert.rejects(connectClient(b.url, 'hosted', {}, BOB), /open .*\/connect\/hosted to authorize/);
    assert.equal((await authorizeAs(b.url, 'hosted', BOB, 'bob')).status, 303);
    assert.equal(await whoamiAs(b.url, 'hosted', BOB), `sub=bob aud=${RESOURCE}`);
    assert.equal(await whoami(b.url, 'hosted'), `sub=ada aud=${RESOURCE}`);
  });

  test('a single-user hosted server: the user\'s own instance starts, challenges berth, and the user authorizes for it', async () => {
    await assert.rejects(connectClient(b.url, 'mine', {}, AUTH), /open .*\/connect\/mine to authorize/);
    assert.equal((await authorizeAs(b.url, 'mine', AUTH, 'ada')).status, 303);
    assert.equal(await whoami(b.url, 'mine'), `sub=ada aud=${RESOURCE}`);
  });

  test('an SSE remote: the user authorizes once and their calls carry their token', async () => {
    await assert.rejects(connectClient(b.url, 'sse', {}, AUTH), /open .*\/connect\/sse to authorize/);
    assert.equal((await authorizeAs(b.url, 'sse', AUTH, 'ada')).status, 303);
    assert.equal(await whoami(b.url, 'sse'), `sub=ada aud=${sse.url}`);
  });

  test('an SSE remote without an oauth block that answers 401 with a Bearer challenge gets the flow; its loopback authorization server is refused by the SSRF guard', async () => {
    await assert.rejects(connectClient(b.url, 'bare', {}, AUTH), /open .*\/connect\/bare to authorize/);
    const res = await pressAuthorize(b.url, 'bare', AUTH);
    assert.equal(res.status, 502);
    assert.match(await res.text(), /refused to fetch http:\/\/127\.0\.0\.1:\d+: OAuth endpoints must be https/);
  });

  test('a composite names the component that needs the user\'s authorization and its /connect page; the other components keep working', async () => {
    const client = await connectClient(b.url, 'dev', {}, BOB);
    try {
      const listed = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(listed.includes('t_echo'), `the working component is listed: ${listed.join(', ')}`);
      assert.ok(!listed.includes('n_whoami'), 'the one waiting for an authorization is not');
      await assert.rejects(client.callTool({ name: 'n_whoami', arguments: {} }), (err: unknown) => {
        assert.ok(err instanceof McpError, String(err));
        assert.match(err.message, /component notes .*server notes needs your authorization at its OAuth authorization server: open \/connect\/notes to authorize/);
        assert.equal((err.data as { component?: string }).component, 'notes');
        return true;
      });
      assert.equal(((await client.callTool({ name: 't_echo', arguments: {} })).content as { text: string }[])[0]?.text, 'ok');
      assert.equal((await authorizeAs(b.url, 'notes', BOB, 'bob')).status, 303);
      assert.ok((await client.listTools()).tools.some((t) => t.name === 'n_whoami'), 'listed once authorized');
      assert.equal(((await client.callTool({ name: 'n_whoami', arguments: {} })).content as { text: string }[])[0]?.text, `sub=bob aud=${notes.url}`);
    } finally {
      await client.close();
    }
  });

  for (const [server, upstream] of [['notes', () => notes], ['sse', () => sse]] as const) {
    test(`${server}: a token the upstream refuses (revoked at its authorization server) is refreshed once and the call sent again, without asking the user`, async () => {
      if (server === 'notes') assert.equal((await authorizeAs(b.url, 'notes', AUTH, 'ada')).status, 303);
      // A session open on the held connection (SSE) sees the refusal mid-session, not at connect.
      const client = new Client({ name: 'berth-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${b.url}/mcp/${server}`), { requestInit: { headers: AUTH } }));
      try {
        const before = grants();
        upstream().revokeAccepted();
        const result = await client.callTool({ name: 'whoami', arguments: {} });
        assert.equal((result.content as { text: string }[])[0]?.text, `sub=ada aud=${upstream().url}`);
        assert.equal(grants() - before, 1, 'one refresh grant');
      } finally {
        await client.close();
      }
    });

    test(`${server}: a fresh token refused as well: the call is sent again once, then the user is asked to authorize again; never a loop`, async () => {
      const client = new Client({ name: 'berth-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${b.url}/mcp/${server}`), { requestInit: { headers: AUTH } }));
      try {
        const [before, calls] = [grants(), upstream().posts()];
        upstream().refuseAll(true);
        await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), server === 'notes' ? /open .*\/connect\/notes to authorize/ : /HTTP 401/);
        assert.equal(upstream().posts() - calls, 2, 'the refused request and its one retry');
        assert.equal(grants() - before, 1, 'one refresh grant');
        upstream().refuseAll(false);
        // The token refused twice is gone: the user is asked to authorize again, and nothing goes upstream meanwhile.
        await assert.rejects(connectClient(b.url, server, {}, AUTH), new RegExp(`open .*/connect/${server} to authorize`));
        assert.equal(upstream().posts() - calls, 2, 'nothing more went upstream');
        assert.equal((await authorizeAs(b.url, server, AUTH, 'ada')).status, 303);
      } finally {
        upstream().refuseAll(false);
        await client.close();
      }
    });
  }
});
