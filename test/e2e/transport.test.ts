// The transport rules of the MCP specification, each answered exactly, plus
// the other real clients: the 2026-07-28 (stateless) SDK client, the
// Inspector CLI, and an HTTP upstream proxied as a remote.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, everythingServer, everythingYaml, freePort, repoRoot, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const ACCEPT = 'application/json, text/event-stream';
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** fetch cannot set Host; a DNS-rebinding request can. */
function rawPost(url: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('transport rules', () => {
  let b: TestBerth;
  let mcp: string;
  before(async () => {
    b = await startTestBerth(everythingYaml(), 'listen: { host: 127.0.0.1, port: 0, maxBodyBytes: 2048, allowedOrigins: ["https://app.example.com"] }\n'.replace(/^/, ''));
    mcp = `${b.url}/mcp/everything`;
  });
  after(() => b.stop());

  const cases: { name: string; run: () => Promise<Response>; status: number; code?: number; message?: RegExp }[] = [
    { name: 'unknown session → 404', run: () => post(mcp, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-session-id': 'nope' }), status: 404, code: -32001 },
    { name: 'missing session id → 400', run: () => post(mcp, { jsonrpc: '2.0', id: 2, method: 'tools/list' }), status: 400, message: /Mcp-Session-Id/ },
    { name: 'unsupported protocol version → 400', run: () => post(mcp, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-protocol-version': '1999-01-01' }), status: 400, message: /Unsupported protocol version/ },
    { name: 'foreign Origin → 403', run: () => post(mcp, INIT, { origin: 'https://evil.example' }), status: 403, message: /Origin/ },
    { name: 'DNS-rebinding Host → 403', run: () => rawPost(mcp, INIT, { host: 'attacker.example:8080' }), status: 403, message: /Host/ },
    { name: 'PUT → 405', run: () => fetch(mcp, { method: 'PUT' }), status: 405 },
    { name: 'Accept without text/event-stream → 406', run: () => post(mcp, INIT, { accept: 'application/json' }), status: 406 },
    { name: 'text/plain body → 415', run: () => post(mcp, INIT, { 'content-type': 'text/plain' }), status: 415 },
    { name: 'body over maxBodyBytes → 413', run: () => post(mcp, { ...INIT, params: { ...INIT.params, pad: 'x'.repeat(4096) } }), status: 413 },
    { name: 'malformed JSON → -32700', run: () => post(mcp, '{"jsonrpc": "2.0", "id": 1,'), status: 400, code: -32700 },
    { name: 'Mcp-Method disagreeing with the body → 400', run: () => post(mcp, INIT, { 'mcp-method': 'tools/list' }), status: 400, message: /Mcp-Method/ },
    { name: 'unknown server → 404 naming the servers', run: () => post(`${b.url}/mcp/nope`, INIT), status: 404, message: /no server named "nope"; servers: everything/ },
    {
      name: 'stateless request whose Mcp-Name disagrees → 400 -32020',
      run: () =>
        post(
          mcp,
          { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' }, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } } },
          { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'get-sum' },
        ),
      status: 400,
      code: -32020,
    },
    {
      name: 'stateless GET → 405',
      run: () => fetch(mcp, { headers: { accept: 'text/event-stream', 'mcp-protocol-version': '2026-07-28' } }),
      status: 405,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const res = await c.run();
      assert.equal(res.status, c.status);
      const body = (await res.json()) as { error?: { code: number; message: string } };
      if (c.code !== undefined) assert.equal(body.error?.code, c.code);
      if (c.message !== undefined) assert.match(body.error?.message ?? '', c.message);
    });
  }

  test('an allowed Origin passes', async () => {
    const res = await post(mcp, INIT, { origin: 'https://app.example.com' });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });

  test('DELETE ends a session; its id then gets 404', async () => {
    const res = await post(mcp, INIT);
    const id = res.headers.get('mcp-session-id');
    await res.body?.cancel();
    assert.ok(id);
    const del = await fetch(mcp, { method: 'DELETE', headers: { 'mcp-session-id': id } });
    assert.equal(del.status, 200);
    const again = await post(mcp, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' });
    assert.equal(again.status, 404);
  });

  test('a request id used twice in a batch, or while its first request is in flight, gets 400 at once; the first still answers', async () => {
    const init = await post(mcp, INIT);
    const session = init.headers.get('mcp-session-id') ?? '';
    await init.body?.cancel();
    const headers = { 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    await (await post(mcp, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).body?.cancel();
    const send = (body: unknown): Promise<Response> => fetch(mcp, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });

    const batch = await send([{ jsonrpc: '2.0', id: 9, method: 'tools/list' }, { jsonrpc: '2.0', id: 9, method: 'ping' }]);
    assert.equal(batch.status, 400);
    assert.match(((await batch.json()) as { error: { message: string } }).error.message, /request id 9 is used twice in this batch/);

    // The first answers with progress first: its headers arrive while it is still in flight.
    const first = await send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 }, _meta: { progressToken: 'p' } } });
    const second = await send({ jsonrpc: '2.0', id: 7, method: 'tools/list' });
    assert.equal(second.status, 400);
    const refused = (await second.json()) as { error: { code: number; message: string } };
    assert.equal(refused.error.code, -32600);
    assert.match(refused.error.message, /request id 7 is used by a request of this session still in flight/);
    assert.match(await first.text(), /"id":7,"result"|"result":.*"id":7/);
  });

  test('a broken stream resumes with Last-Event-ID and loses nothing', async () => {
    const init = await post(mcp, INIT);
    const session = init.headers.get('mcp-session-id') ?? '';
    await init.body?.cancel();
    const headers = { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    await (await post(mcp, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).body?.cancel();
    const abort = new AbortController();
    const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 }, _meta: { progressToken: 'tok' } } };
    const res = await fetch(mcp, { method: 'POST', signal: abort.signal, headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers }, body: JSON.stringify(call) });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let buffered = '';
    let lastId: string | undefined;
    while (lastId === undefined) {
      const { value, done } = await reader.read();
      assert.equal(done, false, 'stream ended before the first progress event');
      buffered += new TextDecoder().decode(value);
      const event = /id: (\S+)\n(?:event: message\n)?data: (\{.*"notifications\/progress".*\})\n/.exec(buffered);
      if (event !== null) lastId = event[1];
    }
    abort.abort();
    // Until berth has seen the disconnect, the old stream still holds its place (409).
    const resumed = await waitFor(async () => {
      const r = await fetch(mcp, { headers: { accept: 'text/event-stream', 'last-event-id': lastId, ...headers } });
      if (r.status === 200) return r;
      await r.body?.cancel();
      return undefined;
    }, { timeoutMs: 5_000, message: 'the resumed stream' });
    const rest = resumed.body?.getReader();
    let replay = '';
    while (!replay.includes('"id":7')) {
      const chunk = await rest?.read();
      assert.ok(chunk !== undefined && !chunk.done, `stream ended before the result: ${replay}`);
      replay += new TextDecoder().decode(chunk.value);
    }
    const progress = [...replay.matchAll(/"progress":(\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual(progress, [2, 3, 4], 'exactly the events after the last one seen');
    await rest?.cancel();
  });

  test('the 2026-07-28 SDK client works statelessly (discover, list, call)', async () => {
    const client = new ModernClient({ name: 'modern', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    // Every answer berth gives this client: a stateless one must never hand out a session.
    const sessionHeaders: string[] = [];
    const recording = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const res = await fetch(input, init);
      const id = res.headers.get('mcp-session-id');
      if (id !== null) sessionHeaders.push(id);
      return res;
    };
    const sessionsBefore = b.berth.sessions.size;
    const transport = new ModernTransport(new URL(mcp), { fetch: recording });
    await client.connect(transport);
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'echo'));
    const result = (await client.callTool({ name: 'echo', arguments: { message: 'stateless' } })) as { content: { text: string }[] };
    assert.equal(result.content[0]?.text, 'Echo: stateless');
    assert.deepEqual(sessionHeaders, [], 'no response carried Mcp-Session-Id');
    assert.equal(transport.sessionId, undefined);
    assert.equal(b.berth.sessions.size, sessionsBefore, 'berth opened no session for it');
    await client.close();
  });

  test('a 2026-07-28 client answers server-initiated requests in extra rounds (input_required)', async () => {
    const client = new ModernClient({ name: 'modern', version: '1.0.0' }, { capabilities: { elicitation: { form: {} }, sampling: {} }, versionNegotiation: { mode: { pin: '2026-07-28' } } });
    let asked = 0;
    client.setRequestHandler('elicitation/create' as never, (async () => {
      asked++;
      return { action: 'accept', content: { name: 'Grace', check: true, email: 'grace@example.com', integer: 2, number: 2.5, untitledSingleSelectEnum: 'option1', titledSingleSelectEnum: 'value1', legacyTitledEnum: 'opt1', untitledMultipleSelectEnum: ['option1'], titledMultipleSelectEnum: ['value1'] } };
    }) as never);
    client.setRequestHandler('sampling/createMessage' as never, (async () => ({ model: 'm', role: 'assistant', content: { type: 'text', text: 'sampled statelessly' } })) as never);
    await client.connect(new ModernTransport(new URL(mcp)));
    const elicited = (await client.callTool({ name: 'trigger-elicitation-request', arguments: {} })) as { content: { text: string }[] };
    assert.equal(asked, 1);
    assert.match(elicited.content.map((c) => c.text).join(''), /Grace/);
    const sampled = (await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 5 } })) as { content: { text: string }[] };
    assert.match(sampled.content.map((c) => c.text).join(''), /sampled statelessly/);
    await client.close();
  });

  test('the Inspector CLI lists and calls tools', async () => {
    const cli = path.join(repoRoot, 'node_modules/@modelcontextprotocol/inspector/cli/build/index.js');
    const run = promisify(execFile);
    // Inspector 0.x appends /mcp to any URL not ending in it; berth answers at /mcp/<server>/mcp too.
    const list = await run(process.execPath, [cli, `${mcp}/mcp`, '--transport', 'http', '--method', 'tools/list'], { timeout: 60_000 });
    assert.ok((JSON.parse(list.stdout) as { tools: { name: string }[] }).tools.some((t) => t.name === 'get-sum'));
    const call = await run(process.execPath, [cli, `${mcp}/mcp`, '--transport', 'http', '--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=inspected'], { timeout: 60_000 });
    assert.match(call.stdout, /Echo: inspected/);
  });
});

describe('remote servers', () => {
  let upstream: ChildProcess;
  let b: TestBerth;
  before(async () => {
    const port = await freePort();
    upstream = spawn(process.execPath, [everythingServer, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    await waitFor(() => fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' }).then(() => true), { timeoutMs: 20_000, message: 'upstream listening' });
    b = await startTestBerth(`  remote:
    type: remote
    url: http://127.0.0.1:${port}/mcp
    headers:
      X-Berth-Test: "yes"
  wrapped:
    type: composite
    components:
      - server: remote
        prefix: r_
        tools: { include: [echo] }
`);
  });
  after(async () => {
    await b.stop();
    upstream.kill();
  });

  test('a streamable-HTTP remote is proxied, sessions and all', async () => {
    const client = await connectClient(b.url, 'remote');
    assert.equal(((await client.callTool({ name: 'echo', arguments: { message: 'via remote' } })) as { content: { text: string }[] }).content[0]?.text, 'Echo: via remote');
    const seen: number[] = [];
    await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 0.2, steps: 2 } }, undefined, { onprogress: (p) => seen.push(p.progress) });
    assert.deepEqual(seen, [1, 2]);
    await client.close();
  });

  test('a composite reaches a streamable-HTTP remote component', async () => {
    const client = await connectClient(b.url, 'wrapped');
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['r_echo']);
    assert.equal(((await client.callTool({ name: 'r_echo', arguments: { message: 'composed' } })) as { content: { text: string }[] }).content[0]?.text, 'Echo: composed');
    await client.close();
  });

  test('a legacy SSE client reaches a streamable-HTTP remote through a bridge', async () => {
    const client = new LegacyClient({ name: 'old-client', version: '1.0.0' });
    await client.connect(new SSEClientTransport(new URL(`${b.url}/sse/remote`)));
    assert.equal(((await client.callTool({ name: 'echo', arguments: { message: 'bridged' } })) as { content: { text: string }[] }).content[0]?.text, 'Echo: bridged');
    await client.close();
  });

  test('an SSE remote is held as one connection and multiplexed', async () => {
    const port = await freePort();
    const sse = spawn(process.execPath, [everythingServer, 'sse'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    try {
      await waitFor(() => fetch(`http://127.0.0.1:${port}/`).then(() => true), { timeoutMs: 20_000, message: 'SSE upstream listening' });
      const r = await startTestBerth(`  legacy:\n    type: remote\n    transport: sse\n    url: http://127.0.0.1:${port}/sse\n`);
      try {
        const clients = await Promise.all([1, 2].map(() => connectClient(r.url, 'legacy')));
        const texts = await Promise.all(clients.map((c, i) => c.callTool({ name: 'echo', arguments: { message: `sse ${i}` } })));
        assert.deepEqual(texts.map((t) => (t as { content: { text: string }[] }).content[0]?.text), ['Echo: sse 0', 'Echo: sse 1']);
        await Promise.all(clients.map((c) => c.close()));
      } finally {
        await r.stop();
      }
    } finally {
      sse.kill();
    }
  });

  test("the client's credentials never reach the upstream; configured headers do", async () => {
    const seen: Record<string, string | string[] | undefined>[] = [];
    const recorder = createHttpServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    const port = (recorder.address() as { port: number }).port;
    const r = await startTestBerth(`  rec:\n    type: remote\n    url: http://127.0.0.1:${port}/mcp\n    headers:\n      X-Berth-Test: "yes"\n`);
    try {
      const res = await post(`${r.url}/mcp/rec`, INIT, { authorization: 'Bearer client-secret-token', cookie: 'session=1' });
      assert.equal(res.status, 200);
      await res.text();
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.['authorization'], undefined);
      assert.equal(seen[0]?.['cookie'], undefined);
      assert.equal(seen[0]?.['x-berth-test'], 'yes');
      assert.equal(seen[0]?.['host'], `127.0.0.1:${port}`);
    } finally {
      await r.stop();
      recorder.close();
    }
  });
});
