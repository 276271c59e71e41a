// Per-user credentials sent as request headers, through the whole path with
// real parts: API-key identities, credentials saved through the API, a real
// MCP server (test/fixtures/children/headers-server.ts) that reports the
// headers it received, hosted once and shared (multi-user), and the same
// server as a streamable-HTTP and an SSE remote.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { InstanceStatus, StatusReport } from '../../src/cli/status-model.ts';
import { createLogger } from '../../src/observe/log.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { repoRoot, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const FIXTURE = path.join(repoRoot, 'test/fixtures/children/headers-server.ts');
const KEYS = { alice: 'berth_alice-0123456789abcdef-headers', bob: 'berth_bob-0123456789abcdefgh-headers', carol: 'berth_carol-0123456789abcdef-headers', root: 'berth_root-0123456789abcdef-headers' } as const;
type Who = keyof typeof KEYS;
const SECRETS = { alice: 'alice-secret-1', bob: 'bob-secret-1' } as const;

interface Seen {
  readonly pid: number;
  readonly call: Record<string, string>;
  readonly session: Record<string, string>;
}

/** Starts the fixture as its own process on a free loopback port. */
async function startFixture(mode: 'streamable-http' | 'sse'): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [FIXTURE, ...(mode === 'sse' ? ['sse'] : [])], { env: { PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const port = await waitFor(() => Number(/listening (\d+)/.exec(out)?.[1] ?? 0), { timeoutMs: 20_000, message: `the ${mode} fixture to listen` });
  return { child, port };
}

/** Every client a test made, closed after the suite even when a test failed (an SSE client would reconnect forever). */
const clients: Client[] = [];

async function connectAs(b: TestBerth, who: Who, server: string, transport: 'streamable-http' | 'sse' = 'streamable-http'): Promise<Client> {
  const client = new Client({ name: `headers-${who}`, version: '1' });
  clients.push(client);
  const requestInit = { headers: { 'x-api-key': KEYS[who] } };
  await client.connect(
    transport === 'sse'
      ? new SSEClientTransport(new URL(`${b.url}/sse/${server}`), { requestInit, eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...requestInit.headers } }) } })
      : new StreamableHTTPClientTransport(new URL(`${b.url}/mcp/${server}`), { requestInit }),
  );
  return client;
}

async function seenBy(client: Client): Promise<Seen> {
  const result = (await client.callTool({ name: 'headers', arguments: {} })) as CallToolResult;
  return JSON.parse((result.content[0] as { text: string }).text) as Seen;
}

function save(b: TestBerth, who: Who, server: string, value: string): Promise<Response> {
  return fetch(`${b.url}/api/credentials/${server}`, { method: 'PUT', headers: { 'content-type': 'application/json', 'x-api-key': KEYS[who] }, body: JSON.stringify({ API_KEY: value }) });
}

describe('per-user credentials as request headers', () => {
  let b: TestBerth;
  let log = '';
  const fixtures: ChildProcess[] = [];
  before(async () => {
    const remote = await startFixture('streamable-http');
    const legacy = await startFixture('sse');
    fixtures.push(remote.child, legacy.child);
    const keys = Object.entries(KEYS).map(([user, key]) => `      - { user: ${user}, key: "${key}"${user === 'root' ? ', groups: [admin]' : ''} }`).join('\n');
    const head = `state: { key: "0123456789abcdef0123456789abcdef-headers" }\nauth:\n  - type: apiKey\n    keys:\n${keys}\n`;
    const credentials = '    credentials:\n      API_KEY: { description: "Your API key" }\n    headers:\n      Authorization: "Bearer ${user.credentials.API_KEY}"\n      X-Static: fixed\n';
    const servers = [
      `  shared:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(FIXTURE)}]\n    transport: streamable-http\n    access: { users: [alice, bob, root] }\n${credentials}`,
      `  remote:\n    type: remote\n    url: http://127.0.0.1:${remote.port}/mcp\n${credentials}`,
      `  legacy:\n    type: remote\n    transport: sse\n    url: http://127.0.0.1:${legacy.port}/sse\n${credentials}`,
    ].join('');
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => void ((log += chunk.toString('utf8')), done()) });
    b = await startTestBerth(servers, head, { logger: createLogger({ level: 'debug', destination: sink }) });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await b.stop();
    for (const child of fixtures) {
      child.kill();
      if (child.exitCode === null) await once(child, 'exit');
    }
  });

  test('a caller without the credential gets the MCP error naming /connect', async () => {
    for (const server of ['shared', 'remote']) {
      const err = await connectAs(b, 'alice', server).then(() => undefined, (e: unknown) => e as Error);
      assert.ok(err !== undefined, `${server}: connecting without credentials fails`);
      assert.match(err.message, new RegExp(`needs credentials you have not supplied \\(API_KEY\\): open http://127\\.0\\.0\\.1:\\d+/connect/${server} `));
    }
    const err = await connectAs(b, 'alice', 'legacy', 'sse').then(() => undefined, (e: unknown) => e as Error);
    assert.ok(err !== undefined, 'legacy SSE: connecting without credentials fails');
  });

  test('the /connect page lists each client\'s snippet for its route, asking for the API key instead of showing it', async () => {
    const page = await (await fetch(`${b.url}/connect/shared`, { headers: { 'x-api-key': KEYS.alice } })).text();
    assert.match(page, /<h2>Connect a client<\/h2>/);
    assert.ok(page.includes(`${b.url}/mcp/shared`), 'a snippet names the route at berth\'s URL');
    assert.match(page, /berth-api-key|BERTH_API_KEY/);
    for (const key of Object.values(KEYS)) assert.ok(!page.includes(key), 'no API key in the page');
  });

  /**
   * alice and bob save their own value for `server` and call it (alice over
   * `aliceTransport`); each call, and the upstream session it runs in, carries
   * only the caller's own credential, the fixed header, and never the client's key.
   */
  async function bothCallOwn(server: string, aliceTransport: 'streamable-http' | 'sse' = 'streamable-http'): Promise<{ alice: Client; bob: Client; pids: [number, number] }> {
    for (const who of ['alice', 'bob'] as const) assert.equal((await save(b, who, server, SECRETS[who])).status, 200);
    const alice = await connectAs(b, 'alice', server, aliceTransport);
    const bob = await connectAs(b, 'bob', server);
    const seen = { alice: await seenBy(alice), bob: await seenBy(bob) };
    for (const who of ['alice', 'bob'] as const) {
      assert.equal(seen[who].call['authorization'], `Bearer ${SECRETS[who]}`, `${who}'s call`);
      assert.equal(seen[who].session['authorization'], `Bearer ${SECRETS[who]}`, `${who}'s upstream session was opened with their credential`);
      assert.equal(seen[who].call['x-static'], 'fixed');
      assert.equal(seen[who].call['x-api-key'], undefined, "the client's own key never goes upstream");
    }
    return { alice, bob, pids: [seen.alice.pid, seen.bob.pid] };
  }

  test('two users of one shared instance each send only their own credential', async () => {
    const { alice, bob, pids } = await bothCallOwn('shared');
    assert.equal(pids[0], pids[1], 'one shared instance serves both');
    // A new value reaches alice's next session; bob's connection is not touched.
    assert.equal((await save(b, 'alice', 'shared', 'alice-secret-2')).status, 200);
    const alice2 = await connectAs(b, 'alice', 'shared');
    assert.equal((await seenBy(alice2)).call['authorization'], 'Bearer alice-secret-2');
    assert.equal((await seenBy(bob)).call['authorization'], `Bearer ${SECRETS.bob}`);
    await Promise.all([alice.close().catch(() => undefined), alice2.close(), bob.close()]);
  });

  test("a streamable-HTTP remote gets each caller's own header on every request", async () => {
    const { alice, bob } = await bothCallOwn('remote');
    await Promise.all([alice.close(), bob.close()]);
  });

  test('an SSE remote gets an own connection per caller, opened with their header (legacy SSE and streamable-HTTP clients)', async () => {
    const { alice, bob } = await bothCallOwn('legacy', 'sse');
    // Status counts the users' connections, without naming the users.
    const report = (await (await fetch(`${b.url}/status`, { headers: { 'x-api-key': KEYS.root } })).json()) as StatusReport;
    const legacy = report.servers.find((s) => s.name === 'legacy');
    assert.deepEqual(legacy?.userConnections, { total: 2, connected: 2, connecting: 0, down: 0 });
    assert.equal(legacy?.connection, undefined, 'no shared connection');
    await Promise.all([alice.close(), bob.close()]);
  });

  test('a credential the shared server refuses fails that user\'s calls at once, naming /connect; others go on', async () => {
    assert.equal((await save(b, 'root', 'shared', 'rejected-key')).status, 200);
    const started = Date.now();
    const err = await connectAs(b, 'root', 'shared').then(() => undefined, (e: unknown) => e as Error);
    assert.ok(err !== undefined, 'connecting with a refused credential fails');
    assert.match(err.message, /refused your credentials \(save new ones at \/connect\)/);
    assert.ok(Date.now() - started < 10_000, `failed after ${Date.now() - started} ms, not after the 30 s ready wait`);
    const bob = await connectAs(b, 'bob', 'shared');
    assert.equal((await seenBy(bob)).call['authorization'], `Bearer ${SECRETS.bob}`);
    await bob.close();
  });

  test('/connect and /api/credentials refuse a user the server\'s access does not admit', async () => {
    const as = (who: Who): Record<string, string> => ({ 'x-api-key': KEYS[who] });
    const page = await fetch(`${b.url}/connect/shared`, { headers: as('carol') });
    assert.equal(page.status, 403);
    assert.match(await page.text(), /user carol may not use server shared/);
    const put = await fetch(`${b.url}/api/credentials/shared`, { method: 'PUT', headers: { ...as('carol'), 'content-type': 'application/json' }, body: '{"API_KEY":"x"}' });
    assert.equal(put.status, 403);
    assert.equal(((await put.json()) as { error: { code: string } }).error.code, 'forbidden');
    const get = await fetch(`${b.url}/api/credentials/shared`, { headers: as('carol') });
    assert.equal(get.status, 403);
    // Deleting one's own values stays open (carol has none: 404, not 403).
    assert.equal((await fetch(`${b.url}/api/credentials/shared`, { method: 'DELETE', headers: as('carol') })).status, 404);
    // The same answers as /mcp/<server>: unknown servers stay 404.
    assert.equal((await fetch(`${b.url}/connect/nothing`, { headers: as('carol') })).status, 404);
    assert.equal((await fetch(`${b.url}/mcp/shared`, { method: 'POST', headers: as('carol') })).status, 403);
    const allowed = await fetch(`${b.url}/connect/shared`, { headers: as('alice') });
    assert.equal(allowed.status, 200);
    assert.match(await allowed.text(), /API_KEY/);
    // carol reaches the remote (no access rule): its page is hers.
    assert.equal((await fetch(`${b.url}/connect/remote`, { headers: as('carol') })).status, 200);
  });

  test('secrets appear in neither /status nor the log', async () => {
    const report = await (await fetch(`${b.url}/status`, { headers: { 'x-api-key': KEYS.root } })).text();
    await waitFor(() => log.includes('credentials saved'), { message: 'the log to have the saves' });
    for (const secret of [...Object.values(SECRETS), 'alice-secret-2', 'rejected-key']) {
      assert.ok(!report.includes(secret), `status shows ${secret}`);
      assert.ok(!log.includes(secret), `the log shows ${secret}`);
    }
  });
});

/**
 * A hosted server that refuses `initialize` without a user's credential
 * (HTTP 401): berth's own connection, which carries no user's, is refused, and
 * that means "up, asks for credentials". A server that answers 503 is not up.
 */
describe('a hosted server that asks each user for credentials', () => {
  let b: TestBerth;
  const root = { 'x-api-key': KEYS.root };
  const head = `state: { key: "0123456789abcdef0123456789abcdef-headers" }\nauth:\n  - type: apiKey\n    keys:\n${(['alice', 'root'] as const).map((who) => `      - { user: ${who}, key: "${KEYS[who]}"${who === 'root' ? ', groups: [admin]' : ''} }`).join('\n')}\n`;
  const server = (name: string, env: string): string =>
    `  ${name}:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(FIXTURE)}]\n    transport: streamable-http\n    env: { ${env} }\n    credentials:\n      API_KEY: { description: "Your API key" }\n    headers:\n      Authorization: "Bearer \${user.credentials.API_KEY}"\n`;
  const servers = (generation: number): string => server('guarded', `REQUIRE_AUTHORIZATION: "1", GENERATION: "${generation}"`) + server('broken', 'ANSWER_STATUS: "503"');
  const instancesOf = async (name: string): Promise<readonly InstanceStatus[]> => {
    const report = (await (await fetch(`${b.url}/status`, { headers: root })).json()) as StatusReport;
    return report.servers.find((s) => s.name === name)?.instances ?? [];
  };

  before(async () => {
    b = await startTestBerth(servers(1), head);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await b.stop();
  });

  test('is ready, and status says it asks for credentials; one answering 503 is not', async () => {
    const [guarded] = await waitFor(async () => {
      const instances = await instancesOf('guarded');
      return instances[0]?.state === 'ready' ? instances : undefined;
    }, { timeoutMs: 30_000, message: 'the guarded server ready' });
    assert.match(guarded?.note ?? '', /asks each user for credentials \(HTTP 401 without a user's credentials\)/);
    assert.equal(guarded?.connection?.httpStatus, 401);
    assert.equal(guarded?.lastError, undefined, 'a refusal that means "up" is no error');
    // Once berth's own connection has seen the 503, the instance is known and still not ready.
    const [broken] = await waitFor(async () => {
      const instances = await instancesOf('broken');
      return instances[0]?.connection?.httpStatus === 503 ? instances : undefined;
    }, { timeoutMs: 30_000, message: "the broken server's 503 seen" });
    assert.notEqual(broken?.state, 'ready');
    assert.match(broken?.lastError ?? '', /HTTP 503/);
  });

  test('users with credentials call it, and a spec change is promoted with their sessions', async () => {
    assert.equal((await save(b, 'alice', 'guarded', 'alice-guarded')).status, 200);
    const alice = await connectAs(b, 'alice', 'guarded');
    const first = await seenBy(alice);
    assert.equal(first.session['authorization'], 'Bearer alice-guarded');
    const [old] = await instancesOf('guarded');
    b.writeConfig(servers(2), head);
    // Promoted: the old instance goes once the new one is ready the same way.
    await waitFor(async () => {
      const instances = await instancesOf('guarded');
      return instances.length === 1 && instances[0]?.id !== old?.id && instances[0]?.state === 'ready';
    }, { timeoutMs: 30_000, message: 'the new spec serving and the old instance gone' });
    const moved = await seenBy(alice);
    assert.notEqual(moved.pid, first.pid, "alice's session moved to the new instance");
    assert.equal(moved.session['authorization'], 'Bearer alice-guarded', 'opened there with her credential');
    await alice.close();
  });
});
