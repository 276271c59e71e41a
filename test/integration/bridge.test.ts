// `berth bridge`: server-everything on stdio, served as streamable HTTP to the
// SDK client and the Inspector CLI; run as the real CLI process.
import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { everythingServer, repoRoot } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const berthBin = path.join(repoRoot, 'bin/berth.js');

describe('berth bridge', () => {
  let bridge: ChildProcessWithoutNullStreams;
  let url = '';
  let stderr = '';

  before(async () => {
    bridge = spawn(process.execPath, [berthBin, 'bridge', '--port', '0', '--', process.execPath, everythingServer, 'stdio'], { stdio: 'pipe' });
    bridge.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    url = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+\/mcp)"/.exec(stderr)?.[1], { timeoutMs: 20_000, message: 'the bridge listening' });
    await waitFor(async () => (await fetch(new URL('/readyz', url))).ok, { timeoutMs: 20_000, message: 'the server ready' });
  });
  after(() => {
    if (bridge.exitCode === null) bridge.kill('SIGKILL');
  });

  test('the SDK client lists and calls tools, in two sessions at once', async () => {
    const clients = [new Client({ name: 'a', version: '1' }), new Client({ name: 'b', version: '1' })];
    await Promise.all(clients.map((c) => c.connect(new StreamableHTTPClientTransport(new URL(url)))));
    const [a, b] = clients as [Client, Client];
    assert.ok((await a.listTools()).tools.some((t) => t.name === 'get-sum'));
    const [x, y] = await Promise.all([a.callTool({ name: 'echo', arguments: { message: 'from a' } }), b.callTool({ name: 'echo', arguments: { message: 'from b' } })]);
    assert.match(JSON.stringify(x), /Echo: from a/);
    assert.match(JSON.stringify(y), /Echo: from b/);
    await Promise.all(clients.map((c) => c.close()));
  });

  test('the Inspector CLI lists tools', async () => {
    const cli = path.join(repoRoot, 'node_modules/@modelcontextprotocol/inspector/cli/build/index.js');
    const list = await promisify(execFile)(process.execPath, [cli, url, '--transport', 'http', '--method', 'tools/list'], { timeout: 60_000 });
    assert.ok((JSON.parse(list.stdout) as { tools: { name: string }[] }).tools.some((t) => t.name === 'echo'));
  });

  test('unknown paths get 404, foreign origins 403', async () => {
    assert.equal((await fetch(new URL('/nope', url))).status, 404);
    const foreign = await fetch(url, { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    assert.equal(foreign.status, 403);
  });

  test('every answer carries a request id: the caller\'s X-Request-Id, or a new one per request', async () => {
    const given = await fetch(new URL('/nope', url), { headers: { 'x-request-id': 'trace-42' } });
    assert.equal(given.headers.get('x-request-id'), 'trace-42');
    const ids = await Promise.all([1, 2].map(async () => (await fetch(new URL('/nope', url))).headers.get('x-request-id')));
    assert.ok(ids.every((id) => id !== null && id.length > 0), JSON.stringify(ids));
    assert.notEqual(ids[0], ids[1]);
  });

  test('SIGTERM stops the server and the bridge exits 0', async () => {
    const exited = new Promise<number | null>((resolve) => bridge.once('exit', (code) => resolve(code)));
    bridge.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(stderr, /"msg":"server stopped"/);
  });
});

test('berth bridge without a command explains the usage', async () => {
  const run = await promisify(execFile)(process.execPath, [berthBin, 'bridge'], { timeout: 20_000 }).then(
    () => assert.fail('should have failed'),
    (err: { code: number; stderr: string }) => err,
  );
  assert.equal(run.code, 1);
  assert.match(run.stderr, /missing required argument 'command'/);
});
