// berth's session-era transport: JSON when the result is the first thing
// the upstream says about a request, SSE when something comes before it;
// the standalone stream's resumption; and the bound on a reader that never reads.
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingYaml, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';
import { SessionTransport } from '../../src/proxy/downstream/session-transport.ts';

const ACCEPT = 'application/json, text/event-stream';

/** The `data:` messages and ids of an SSE body. */
function events(text: string): { id?: string; message: { id?: unknown; method?: string; result?: unknown; params?: { progress?: number } } }[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const id = /^id: (.+)$/m.exec(block)?.[1];
      const data = /^data: (.+)$/m.exec(block)?.[1] ?? '';
      return { ...(id === undefined ? {} : { id }), message: JSON.parse(data) };
    });
}

describe('answer format through berth', () => {
  let b: TestBerth;
  let mcp: string;
  let headers: Record<string, string>;
  before(async () => {
    b = await startTestBerth(everythingYaml());
    mcp = `${b.url}/mcp/everything`;
    const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }, {});
    assert.equal(init.headers.get('content-type'), 'application/json', 'initialize is answered with JSON');
    assert.ok(init.headers.get('content-length'));
    await init.json();
    headers = { 'mcp-session-id': init.headers.get('mcp-session-id') ?? '', 'mcp-protocol-version': '2025-11-25' };
  });
  after(() => b.stop());

  function post(body: unknown, extra: Record<string, string> = headers): Promise<Response> {
    return fetch(mcp, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, ...extra }, body: JSON.stringify(body) });
  }
  const echo = (id: number, message: string): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { message } } });
  const longRunning = (id: number): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: 0.2, steps: 2 }, _meta: { progressToken: `t${id}` } } });

  test('a notification is accepted with 202 and no body', async () => {
    const res = await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');
  });

  test('a result with nothing before it is one JSON body with its length', async () => {
    const res = await post(echo(2, 'plain'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(res.headers.get('mcp-session-id'), headers['mcp-session-id']);
    const text = await res.text();
    assert.equal(Number(res.headers.get('content-length')), Buffer.byteLength(text));
    assert.deepEqual(JSON.parse(text), { jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'Echo: plain' }] } });
  });

  test('progress before the result makes the answer an SSE stream, every event with an id', async () => {
    const res = await post(longRunning(3));
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const got = events(await res.text());
    assert.deepEqual(got.map((e) => e.message.method ?? `result ${String(e.message.id)}`), ['notifications/progress', 'notifications/progress', 'result 3']);
    assert.deepEqual(got.map((e) => e.message.params?.progress).slice(0, 2), [1, 2]);
    assert.ok(got.every((e) => e.id !== undefined && /^\d+:\d+$/.test(e.id)), 'ids name the stream and the event');
  });

  test('a batch whose results come with nothing before them is one JSON array', async () => {
    const res = await post([echo(4, 'a'), echo(5, 'b')]);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const body = (await res.json()) as { id: number; result: { content: { text: string }[] } }[];
    assert.deepEqual(body.map((m) => [m.id, m.result.content[0]?.text]).sort(), [[4, 'Echo: a'], [5, 'Echo: b']]);
  });

  test('a batch with progress before a result is an SSE stream carrying every result', async () => {
    const res = await post([echo(6, 'first'), longRunning(7)]);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const got = events(await res.text());
    const results = got.filter((e) => e.message.result !== undefined).map((e) => e.message.id);
    assert.deepEqual(results.sort(), [6, 7]);
    assert.equal(got.filter((e) => e.message.method === 'notifications/progress').length, 2);
  });

  test('initialize inside a session is refused', async () => {
    const res = await post({ jsonrpc: '2.0', id: 8, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: number } }).error.code, -32600);
  });

  test('a message that is not JSON-RPC is -32700', async () => {
    const res = await post({ jsonrpc: '1.0', id: 9, method: 'tools/list' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: number } }).error.code, -32700);
  });
});

describe('the transport on its own', () => {
  let server: Server;
  let url: string;
  let transport: SessionTransport;
  const logs: string[] = [];
  /** Server-side responses of GET streams, in order. */
  const streams: ServerResponse[] = [];

  function open(maxQueuedBytes: number): void {
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) });
    transport = new SessionTransport({ sessionId: 's1', logger, keepAliveMs: 60_000, maxQueuedBytes });
  }

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      streams.push(res);
      transport.handleGet(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    await transport.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const note = (n: number, pad = ''): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: { n, pad } } }) as JSONRPCMessage;

  test('a broken standalone stream resumes with Last-Event-ID: what was missed, then what comes next', async () => {
    open(4 * 1024 * 1024);
    const abort = new AbortController();
    const first = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
    assert.equal(first.status, 200);
    const firstRes = streams.at(-1) as ServerResponse;
    const second = await fetch(url, { headers: { accept: 'text/event-stream' } });
    assert.equal(second.status, 409, 'one standalone stream per session');
    await second.body?.cancel();
    await transport.send(note(1));
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value);
    const lastId = events(text)[0]?.id;
    assert.equal(lastId, 'g:1');
    abort.abort();
    await waitFor(() => firstRes.destroyed, { message: 'the server sees the disconnect' });
    await transport.send(note(2));
    await transport.send(note(3));
    const resumed = await fetch(url, { headers: { accept: 'text/event-stream', 'last-event-id': lastId ?? '' } });
    assert.equal(resumed.status, 200);
    const rest = (resumed.body as ReadableStream<Uint8Array>).getReader();
    let replay = '';
    await transport.send(note(4));
    while (events(replay).length < 3) replay += new TextDecoder().decode((await rest.read()).value);
    assert.deepEqual(events(replay).map((e) => (e.message.params as { data?: { n: number } } | undefined)?.data?.n), [2, 3, 4]);
    await rest.cancel();
    await transport.close();
  });

  test('a reader that does not keep up is cut off at the bound, with a log line, and the session can stream again', async () => {
    const limit = 256 * 1024;
    open(limit);
    logs.length = 0;
    const pad = 'x'.repeat(64 * 1024);
    // A client that reads the headers and then never reads again.
    const client = httpRequest(url, { headers: { accept: 'text/event-stream' } });
    const response = await new Promise<IncomingMessage>((resolve, reject) => client.on('response', resolve).on('error', reject).end());
    response.pause();
    response.on('error', () => undefined);
    const res = streams.at(-1) as ServerResponse;
    let sent = 0;
    let peak = 0;
    // Bounded: at most 1,000 messages of 64 KiB.
    while (!res.destroyed && sent < 1_000) {
      await transport.send(note(sent++, pad));
      peak = Math.max(peak, res.writableLength);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(res.destroyed, `the stream was still open after ${sent} messages`);
    assert.ok(peak <= limit + pad.length + 1024, `queued ${peak} bytes, bound ${limit}`);
    assert.ok(logs.some((l) => l.includes('stream closed: the client is not reading it')), 'a log line says why');
    client.destroy();
    const again = await fetch(url, { headers: { accept: 'text/event-stream' } });
    assert.equal(again.status, 200, 'the standalone slot is free again');
    await again.body?.cancel();
  });

  test('a reader that keeps up is never cut off', async () => {
    open(256 * 1024);
    logs.length = 0;
    const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let received = 0;
    const reading = (async () => {
      let buffered = '';
      while (received < 100) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffered += new TextDecoder().decode(chunk.value);
        const cut = buffered.lastIndexOf('\n\n');
        received += events(buffered.slice(0, cut + 2)).length;
        buffered = buffered.slice(cut + 2);
      }
    })();
    for (let i = 0; i < 100; i++) {
      await transport.send(note(i, 'y'.repeat(16 * 1024)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await reading;
    assert.equal(received, 100);
    assert.equal(logs.length, 0);
    await reader.cancel();
  });
});

describe('a long wait', () => {
  test('turns a JSON answer into SSE with keep-alive comments, and the result follows on it', async () => {
    const logger = pino({ level: 'warn' });
    const transport = new SessionTransport({ sessionId: 's2', logger, keepAliveMs: 50 });
    const received: JSONRPCMessage[] = [];
    transport.onmessage = (m) => void received.push(m);
    const server = createServer((req, res) => transport.handlePost(req, res, [{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'slow' } } as JSONRPCMessage]));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { method: 'POST', headers: { accept: ACCEPT } });
      assert.equal(res.headers.get('content-type'), 'text/event-stream', 'headers come once the wait is long');
      assert.equal(received.length, 1);
      // The result goes once a keep-alive comment has arrived, so it follows one on the stream.
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!text.includes(': keepalive\n\n')) {
        const { value, done } = await reader.read();
        assert.equal(done, false, 'the stream ended before a keep-alive comment');
        text += decoder.decode(value, { stream: true });
      }
      await transport.send({ jsonrpc: '2.0', id: 1, result: { content: [] } } as JSONRPCMessage);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      assert.match(text, /^: keepalive\n\n/);
      assert.deepEqual(events(text).map((e) => e.message.id), [1]);
    } finally {
      await transport.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
