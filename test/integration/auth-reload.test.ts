// Auth settings edited while berth serves: a real berth watching its file, a
// remote upstream behind it (nothing to start), and a real authorization
// server for the jwt provider. Keys, providers and access rules apply at the
// reload that reads them; an auth section berth must not serve is refused
// whole, and the last good one keeps serving.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { sha256Hex } from '../../src/auth/api-key.ts';
import type { StatusReport } from '../../src/cli/status-model.ts';
import type { ReloadResult } from '../../src/reconcile/controller.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, recordingUpstream, repoRoot, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { startIssuer } from '../helpers/oidc.ts';
import { waitFor } from '../helpers/wait.ts';

const KEYS = { alice: 'berth_alice-key-0123456789abcdef', bob: 'berth_bob-key-0123456789abcdefgh', root: 'berth_root-key-0123456789abcdefg' };
type Who = keyof typeof KEYS;
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };

const keyLine = (who: Who, groups = '[eng]'): string => `      - { user: ${who}, groups: ${groups}, sha256: "${sha256Hex(KEYS[who])}" }\n`;

describe('auth settings reload while serving', () => {
  let issuer: TestIssuer;
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  let b: TestBerth;
  let servers: (access?: string) => string;
  let head: (keys: readonly Who[], extra?: string) => string;

  const call = async (headers: Record<string, string>): Promise<number> => {
    const res = await fetch(`${b.url}/mcp/remote`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(INIT) });
    await res.arrayBuffer();
    return res.status;
  };
  const as = (who: Who): Promise<number> => call({ 'x-api-key': KEYS[who] });

  const reloadWith = (nextServers: string, nextHead: string): Promise<ReloadResult> => reloadIn(b, nextServers, nextHead);

  before(async () => {
    issuer = await startIssuer();
    upstream = await recordingUpstream();
    servers = (access = '') => `  remote:\n    type: remote\n    url: ${upstream.url}\n${access}`;
    head = (keys, extra = '') => `auth:\n  - type: apiKey\n    keys:\n${keys.map((k) => keyLine(k, k === 'root' ? '[admin]' : '[eng]')).join('')}  - type: jwt\n    issuer: ${issuer.issuer}\n${extra}`;
    b = await startTestBerth(servers(), head(['alice', 'root']));
  });
  after(async () => {
    await b?.stop();
    await issuer?.stop();
    upstream?.server.close();
  });

  test('a key added to the file works at once; a removed key is refused', async () => {
    assert.equal(await as('alice'), 200);
    assert.equal(await as('bob'), 401, 'bob has no key yet');
    const added = await reloadWith(servers(), head(['alice', 'bob', 'root']));
    assert.equal(added.kind, 'applied', JSON.stringify(added));
    assert.equal(await as('bob'), 200, 'the new key works without a restart');
    const removed = await reloadWith(servers(), head(['bob', 'root']));
    assert.equal(removed.kind, 'applied', JSON.stringify(removed));
    assert.equal(await as('alice'), 401, 'the removed key is refused');
    assert.equal(await as('bob'), 200);
  });

  test('an access rule added to a server applies at the reload', async () => {
    const reload = await reloadWith(servers('    access: { users: [root] }\n'), head(['bob', 'root']));
    assert.equal(reload.kind, 'applied', JSON.stringify(reload));
    assert.equal(await as('bob'), 403);
    assert.equal(await as('root'), 200);
    await reloadWith(servers(), head(['bob', 'root']));
    assert.equal(await as('bob'), 200, 'and is lifted at the next');
  });

  test('an auth section berth must not serve is refused whole; the last good one keeps serving', async () => {
    const bad = await reloadWith(servers(), head(['alice', 'bob', 'root'], '  - type: header\n    trustedProxies: [10.0.0.300/8]\n'));
    assert.equal(bad.kind, 'rejected');
    assert.match(bad.kind === 'rejected' ? bad.errors.join('\n') : '', /berth\.yaml:\d+:\d+ auth\[2\]\.trustedProxies\[0\]: 10\.0\.0\.300\/8 is not an IP address or CIDR/);
    assert.equal(await as('alice'), 401, 'the key the refused file adds is not in effect');
    assert.equal(await as('bob'), 200, 'the last good keys still are');
    const status = (await (await fetch(`${b.url}/status`, { headers: { 'x-api-key': KEYS.root } })).json()) as StatusReport;
    assert.equal(status.lastReload?.ok, false, '/status reports the refusal');
    assert.match(status.lastReload?.errors.join('\n') ?? '', /auth\[2\]\.trustedProxies\[0\]: 10\.0\.0\.300\/8 is not an IP address or CIDR/);
    assert.equal(status.authHashes?.length, 2, 'and the providers in effect: the last good ones');
    const schema = await reloadWith(servers(), `auth:\n  - type: apiKey\n    keys: [{ groups: [eng], sha256: "${sha256Hex(KEYS.alice)}" }]\n`);
    assert.equal(schema.kind, 'rejected', 'a key without a user is a schema error');
    assert.equal(await as('bob'), 200);
    const good = await reloadWith(servers(), head(['bob', 'root']));
    assert.equal(good.kind, 'applied', JSON.stringify(good));
  });

  test('a jwt provider whose settings did not change keeps its key cache across a reload', async () => {
    const token = await issuer.token(`${b.url}/mcp/remote`);
    assert.equal(await call({ authorization: `Bearer ${token}` }), 200);
    const fetched = issuer.hits.get('/jwks') ?? 0;
    assert.ok(fetched > 0, 'the JWKS was fetched for the first token');
    const reload = await reloadWith(servers(), head(['alice', 'bob', 'root']));
    assert.equal(reload.kind, 'applied', JSON.stringify(reload));
    assert.equal(await as('alice'), 200, 'the reload took effect');
    assert.equal(await call({ authorization: `Bearer ${token}` }), 200);
    assert.equal(issuer.hits.get('/jwks') ?? 0, fetched, 'no new JWKS fetch');
    const removed = await reloadWith(servers(), `auth:\n  - type: apiKey\n    keys:\n${keyLine('alice')}`);
    assert.equal(removed.kind, 'applied', JSON.stringify(removed));
    assert.equal(await call({ authorization: `Bearer ${token}` }), 401, 'without the jwt provider its tokens are refused');
  });
});

describe('a reload that takes access away ends what the caller holds open', () => {
  const TINY = path.join(repoRoot, 'test/fixtures/children/tiny-mcp.sh');
  let b: TestBerth;
  let upstream: Server;
  let streams = 0;
  let held = 0;
  const keys = (who: readonly Who[]): string => `auth:\n  - type: apiKey\n    keys:\n${who.map((k) => keyLine(k, k === 'root' ? '[admin]' : '[eng]')).join('')}`;
  let servers: (access: string) => string;

  /** An SDK client of /mcp/tiny, authenticated with the user's key. */
  const connect = (who: Who): Promise<Client> => connectClient(b.url, 'tiny', {}, { 'x-api-key': KEYS[who] });
  const sessionsOf = async (server: string): Promise<number | undefined> => {
    const report = (await (await fetch(`${b.url}/status`, { headers: { 'x-api-key': KEYS.root } })).json()) as StatusReport;
    return report.servers.find((s) => s.name === server)?.sessions;
  };

  before(async () => {
    // A remote whose GET streams stay open until the client or berth ends them, as do POSTs marked x-hold.
    upstream = createServer((req, res) => {
      if (req.headers['x-hold'] !== undefined) return void held++;
      if (req.method !== 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
      streams++;
      res.once('close', () => streams--);
      res.writeHead(200, { 'content-type': 'text/event-stream' }).flushHeaders();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const remoteUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
    servers = (access) => `  tiny:\n    type: multi-user\n    runtime: command\n    command: sh\n    args: [${JSON.stringify(TINY)}]\n${access}  stream:\n    type: remote\n    url: ${remoteUrl}\n${access}`;
    b = await startTestBerth(servers(''), keys(['alice', 'bob', 'root']));
  });
  after(async () => {
    await b?.stop();
    upstream?.close();
  });

  test('sessions and passed-through streams of a user whose key went, or whom a new access rule leaves out, are closed; others go on', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const stream = (who: Who): Promise<Response> => fetch(`${b.url}/mcp/stream`, { headers: { accept: 'text/event-stream', 'x-api-key': KEYS[who] } });
    const aliceStream = await stream('alice');
    const bobStream = await stream('bob');
    assert.deepEqual([aliceStream.status, bobStream.status], [200, 200]);
    const alicePost = fetch(`${b.url}/mcp/stream`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-api-key': KEYS.alice, 'x-hold': '1' }, body: JSON.stringify(INIT) });
    await waitFor(async () => (await sessionsOf('tiny')) === 2 && streams === 2 && held === 1, { message: 'two sessions, two streams and a request in flight' });

    // Only the keys change: the routes, and the stream's handler, stay as they are.
    const removed = await reloadIn(b, servers(''), keys(['bob', 'root']));
    assert.equal(removed.kind, 'applied', JSON.stringify(removed));
    await waitFor(() => streams === 1, { message: "alice's upstream stream closed" });
    assert.equal((await (aliceStream.body as ReadableStream<Uint8Array>).getReader().read().catch(() => ({ done: true }))).done, true, "alice's client sees her stream end");
    const refused = await alicePost;
    assert.equal(refused.status, 403, 'her request in flight is answered: no longer allowed');
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /user alice may no longer use server stream/);
    assert.equal(await sessionsOf('tiny'), 1, "only bob's session is left");
    await assert.rejects(alice.callTool({ name: 'echo', arguments: {} }), "alice's session is gone");
    assert.equal(((await bob.callTool({ name: 'echo', arguments: {} })) as CallToolResult).content[0]?.type, 'text', 'bob goes on');

    // An access rule that leaves bob out: his session closes; root's opens and works.
    const root = await connect('root');
    const ruled = await reloadIn(b, servers('    access: { users: [root] }\n'), keys(['bob', 'root']));
    assert.equal(ruled.kind, 'applied', JSON.stringify(ruled));
    await waitFor(async () => (await sessionsOf('tiny')) === 1, { message: "bob's session closed" });
    await assert.rejects(bob.callTool({ name: 'echo', arguments: {} }), "bob's session is gone");
    assert.equal(((await root.callTool({ name: 'echo', arguments: {} })) as CallToolResult).content[0]?.type, 'text', 'root goes on');
    assert.equal((await stream('bob')).status, 403, 'and bob cannot open a new stream');
    await Promise.all([alice.close(), bob.close(), root.close(), bobStream.body?.cancel()]);
  });
});

/** Rewrites a berth's file and resolves with the reload that read it. */
async function reloadIn(b: TestBerth, servers: string, head: string): Promise<ReloadResult> {
  const before = b.berth.controller.lastReload;
  b.writeConfig(servers, head);
  return waitFor(() => (b.berth.controller.lastReload !== before ? b.berth.controller.lastReload : undefined), { timeoutMs: 20_000, message: 'the reload of the edited file' });
}
