// A remote route passes the upstream's own sessions through: each belongs to
// the caller who opened it. Bob presenting alice's Mcp-Session-Id gets 404,
// never her session (and the upstream credentials it was opened with).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { sha256Hex } from '../../src/auth/api-key.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingServer, freePort, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const KEYS = { alice: 'berth_alice-pass-0123456789abcdef', bob: 'berth_bob-pass-0123456789abcdefgh' };

describe('passed-through sessions are bound to their caller', () => {
  let upstream: ChildProcess;
  let b: TestBerth;
  before(async () => {
    const port = await freePort();
    upstream = spawn(process.execPath, [everythingServer, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    await waitFor(() => fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' }).then(() => true, () => false), { timeoutMs: 20_000, message: 'upstream listening' });
    b = await startTestBerth(`  remote:\n    type: remote\n    url: http://127.0.0.1:${port}/mcp\n`, `auth:\n  - type: apiKey\n    keys:\n      - { user: alice, sha256: "${sha256Hex(KEYS.alice)}" }\n      - { user: bob, sha256: "${sha256Hex(KEYS.bob)}" }\n`);
  });
  after(async () => {
    await b?.stop();
    upstream?.kill();
  });

  test('another caller presenting the session id gets 404; its owner goes on', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${b.url}/mcp/remote`), { requestInit: { headers: { 'x-api-key': KEYS.alice } } });
    const alice = new Client({ name: 'alice', version: '1' });
    await alice.connect(transport);
    try {
      const session = transport.sessionId ?? '';
      assert.notEqual(session, '', 'the upstream opened a session');
      const asBob = (headers: Record<string, string>, body?: unknown): Promise<Response> =>
        fetch(`${b.url}/mcp/remote`, {
          method: body === undefined ? 'GET' : 'POST',
          headers: { 'x-api-key': KEYS.bob, accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'mcp-protocol-version': '2025-11-25', ...headers },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      const call = await asBob({ 'mcp-session-id': session }, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { message: 'as alice' } } });
      assert.equal(call.status, 404, await call.text());
      const stream = await asBob({ 'mcp-session-id': session, accept: 'text/event-stream' });
      assert.equal(stream.status, 404);
      await stream.body?.cancel();
      const made = await asBob({ 'mcp-session-id': 'a-session-nobody-opened' }, { jsonrpc: '2.0', id: 8, method: 'tools/list' });
      assert.equal(made.status, 404);
      await made.body?.cancel();
      const ended = await fetch(`${b.url}/mcp/remote`, { method: 'DELETE', headers: { 'x-api-key': KEYS.bob, 'mcp-session-id': session } });
      assert.equal(ended.status, 404, 'bob cannot end it either');
      const echoed = (await alice.callTool({ name: 'echo', arguments: { message: 'still mine' } })) as { content: { text?: string }[] };
      assert.match(echoed.content.map((c) => c.text ?? '').join(''), /still mine/);
    } finally {
      await alice.close();
    }
  });
});
