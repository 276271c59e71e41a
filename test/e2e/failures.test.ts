// What broken hosted servers do to berth's clients: every request ends, fast
// and with a reason, and nothing a server prints reaches another client.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, freePort, repoRoot, startTestBerth, status } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const misbehave = path.join(repoRoot, 'test/fixtures/children/misbehave.ts');
const server = (name: string, args: string, extra = ''): string =>
  `  ${name}:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: ${args}\n${extra}`;

async function callError(client: Client, name: string): Promise<McpError> {
  const err = await client.callTool({ name, arguments: {} }, undefined, { timeout: 60_000 }).then(
    () => assert.fail(`${name} should fail`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof McpError, String(err));
  return err;
}

describe('broken hosted servers', () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(
      server('bad', `[${JSON.stringify(misbehave)}, "11000000"]`, '    requestTimeout: 1s\n') +
        server('leaky', `["-e", "process.stderr.write('password=hunter2\\\\n'); process.exit(4)"]`) +
        server('sleeper', `["-e", "setInterval(() => {}, 1000)"]`, '    startupTimeout: 60s\n'),
    );
  });
  after(() => b.stop());

  test('berth is not ready while a server starts within its startup timeout, and names it', async () => {
    const res = await fetch(`${b.url}/readyz`);
    assert.equal(res.status, 503);
    assert.ok(((await res.json()) as { notReady: string[] }).notReady.includes('sleeper'));
  });

  test('a request the server never answers ends at its deadline with -32004', async () => {
    const client = await connectClient(b.url, 'bad');
    const err = await callError(client, 'hang');
    assert.equal(err.code, -32004);
    assert.match(err.message, /did not answer tools\/call within 1 s/);
    await client.close();
  });

  test('an answer with the wrong id leaves the request to its deadline, and the server keeps serving', async () => {
    const client = await connectClient(b.url, 'bad');
    assert.equal((await callError(client, 'wrong-id')).code, -32004);
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['hang', 'wrong-id', 'big', 'slow']);
    await client.close();
  });

  test('an answer over the message size limit becomes an error, not silence', async () => {
    const client = await connectClient(b.url, 'bad');
    const err = await callError(client, 'big');
    assert.equal(err.code, -32603);
    assert.match(err.message, /larger than berth's limit/);
    await client.close();
  });

  test('progress restarts the deadline: a slow call that reports progress completes', async () => {
    const client = await connectClient(b.url, 'bad');
    let progress = 0;
    const result = await client.callTool({ name: 'slow', arguments: {} }, undefined, { onprogress: () => void progress++, timeout: 10_000 });
    assert.equal((result.content as { text: string }[])[0]?.text, 'slow done');
    assert.ok(progress >= 3);
    await client.close();
  });

  test('a crash-looping server fails requests at once with a reason that does not quote its stderr', async () => {
    await waitFor(async () => (await status(b.url)).servers.find((s) => s.name === 'leaky')?.instances[0]?.state === 'failing', { timeoutMs: 30_000, message: 'leaky is failing' });
    const started = Date.now();
    const res = await fetch(`${b.url}/mcp/leaky`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
    });
    const body = await res.text();
    assert.ok(Date.now() - started < 5_000, `answered in ${Date.now() - started} ms`);
    assert.match(body, /crash-looping/);
    assert.doesNotMatch(body, /hunter2/);
    const report = await status(b.url);
    assert.match(JSON.stringify(report.servers.find((s) => s.name === 'leaky')), /hunter2/, 'the operator still sees it in status');
    const logTail = report.servers.find((s) => s.name === 'leaky')?.instances[0]?.logTail ?? [];
    assert.ok(logTail.some((line) => line.includes('password=hunter2')), `its last log lines are in status: ${JSON.stringify(logTail)}`);
  });
});

describe('a remote that is down', () => {
  test('shows in /status with its last error, fails requests fast, and does not hold shutdown', async () => {
    const port = await freePort();
    const b = await startTestBerth(`  gone:\n    type: remote\n    transport: sse\n    url: http://user:hunter2@127.0.0.1:${port}/sse?token=abc\n`);
    try {
      const connection = await waitFor(async () => {
        const c = (await status(b.url)).servers.find((s) => s.name === 'gone')?.connection;
        return c?.state === 'down' ? c : undefined;
      }, { timeoutMs: 30_000, message: 'the remote reported down' });
      assert.ok(connection.lastError !== undefined);
      assert.doesNotMatch(JSON.stringify(await status(b.url)), /hunter2|token=abc/, 'URL credentials are redacted');
      const started = Date.now();
      const res = await fetch(`${b.url}/mcp/gone`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
      });
      assert.equal(res.status, 503);
      assert.ok(Date.now() - started < 5_000, `answered in ${Date.now() - started} ms`);
    } finally {
      const stopping = Date.now();
      await b.stop();
      assert.ok(Date.now() - stopping < 8_000, `stopped in ${Date.now() - stopping} ms`);
    }
  });
});
