// What a hosted or remote HTTP server's bad answer costs: an answer over the
// size limit (JSON, an SSE event, an endless body) or one that is not JSON
// fails its own request with an error; the connection and every other request
// in flight go on. Against hand-written servers, whose answers are the test's
// choice, behind berth's real HTTP upstream and passthrough. And an SSE remote
// whose URL carries credentials.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { silentLogger } from '../../src/observe/log.ts';
import { connectRemote } from '../../src/proxy/upstream/http-upstream.ts';
import type { RemoteConnection } from '../../src/proxy/upstream/http-upstream.ts';
import { Passthrough } from '../../src/proxy/routes/passthrough.ts';
import { requestContext } from '../../src/http/context.ts';

const LIMIT = 64 * 1024;
/** Bound on what an endless answer may write before berth has hung up: far past the limit, far below harm. */
const ENDLESS_BOUND = 256 * 1024 * 1024;

type Message = { method?: string; id?: number; params?: { name?: string } };
type Answer = (message: Message, res: ServerResponse) => void;

/** A streamable-HTTP MCP server by hand: initialize and notifications are answered; tools/call goes to `call`. */
async function scriptedServer(call: Answer): Promise<{ url: string; server: Server; bytesWritten: () => number; close(): Promise<void> }> {
  let written = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const message = JSON.parse(text) as Message;
      if (message.method === 'initialize') {
        const body = { jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'scripted', version: '1' } } };
        return void res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 's' }).end(JSON.stringify(body));
      }
      if (message.method !== 'tools/call') return void res.writeHead(202).end();
      const write = res.write.bind(res);
      res.write = ((chunk: string | Buffer, ...rest: never[]) => {
        written += chunk.length;
        return write(chunk, ...rest);
      }) as typeof res.write;
      call(message, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`,
    server,
    bytesWritten: () => written,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const result = (id: number | undefined, text: string): string => JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } });

/** Writes `total` bytes of a JSON string's inside, respecting backpressure, until the client hangs up or the bound. */
function endless(res: ServerResponse, total: number): void {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let sent = 0;
  const pump = (): void => {
    while (sent < total && !res.destroyed) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  res.on('error', () => undefined);
  pump();
}

/** The test's answers, by tool name; `slow` answers once `release` is called. */
function answers(): { answer: Answer; release: () => void } {
  let release = (): void => undefined;
  const answer: Answer = (m, res) => {
    const json = { 'content-type': 'application/json' };
    switch (m.params?.name) {
      case 'small':
        return void res.writeHead(200, json).end(result(m.id, 'fine'));
      case 'slow':
        release = () => res.writeHead(200, json).end(result(m.id, 'slow but fine'));
        return;
      case 'malformed':
        return void res.writeHead(200, json).end('{"jsonrpc": "2.0", id: oops');
      case 'big-declared': {
        const body = result(m.id, 'x'.repeat(LIMIT));
        return void res.writeHead(200, { ...json, 'content-length': Buffer.byteLength(body) }).end(body);
      }
      case 'big-chunked':
        res.writeHead(200, json);
        res.write(`{"jsonrpc":"2.0","id":${m.id},"result":{"content":[{"type":"text","text":"`);
        return endless(res, ENDLESS_BOUND);
      // Unreadable SSE events in a POST's answer: the SDK client skips them, so only berth can answer the request.
      case 'bad-event':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end(`event: message\ndata: {"jsonrpc": "2.0", id: oops\n\n`);
      case 'bad-event-open':
        // Its id is readable: the request fails at once, though the stream stays open.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.on('error', () => undefined);
        return void res.write(`id: 1\ndata: {"jsonrpc":"2.0","id":${m.id},"result":"not an object"}\n\n`);
      case 'not-jsonrpc-event':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end(`data: {"hello": "world"}\n\n`);
      case 'cut-event':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end(`data: ${result(m.id, 'never finished')}\n`);
      case 'big-event':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: message\ndata: ${result(m.id, 'x'.repeat(LIMIT))}\n\n`);
        return void res.end();
      default:
        return void res.writeHead(404).end();
    }
  };
  return { answer, release: () => release() };
}

async function clientOf(remote: RemoteConnection): Promise<Client> {
  const mux = await remote.acquire(AbortSignal.timeout(5_000));
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  mux.attach(serverSide, 'u');
  await serverSide.start();
  const client = new Client({ name: 't', version: '1' });
  await client.connect(clientSide);
  return client;
}

const call = (client: Client, name: string): Promise<unknown> => client.callTool({ name, arguments: {} }, undefined, { timeout: 20_000 });

describe('an HTTP upstream connection and a bad answer', () => {
  for (const [name, reason] of [
    ['malformed', /server scripted sent an unusable answer: .*JSON/],
    ['big-declared', /larger than berth's limit of 65536 bytes/],
    ['big-chunked', /larger than berth's limit of 65536 bytes/],
    ['big-event', /larger than berth's limit of 65536 bytes/],
    ['bad-event', /server scripted sent an unusable answer: not JSON/],
    ['bad-event-open', /server scripted sent an unusable answer: a JSON-RPC response with neither a result object nor an error/],
    ['not-jsonrpc-event', /server scripted sent an unusable answer: not a JSON-RPC 2\.0 message/],
    ['cut-event', /server scripted sent an unusable answer: the stream ended in the middle of an event/],
  ] as const) {
    test(`${name}: fails its own request; a request in flight beside it and the connection go on`, async () => {
      const { answer, release } = answers();
      const server = await scriptedServer(answer);
      const remote = connectRemote({ name: 'scripted', url: server.url, transport: 'streamable-http', headers: () => ({}), logger: silentLogger(), maxMessageBytes: LIMIT });
      const client = await clientOf(remote);
      try {
        const slow = call(client, 'slow');
        await assert.rejects(call(client, name), reason);
        assert.equal(remote.status().state, 'connected');
        release();
        assert.deepEqual(await slow, { content: [{ type: 'text', text: 'slow but fine' }] });
        assert.deepEqual(await call(client, 'small'), { content: [{ type: 'text', text: 'fine' }] });
        if (name === 'big-chunked') assert.ok(server.bytesWritten() < ENDLESS_BOUND, `berth hung up: ${server.bytesWritten()} bytes written`);
      } finally {
        await client.close();
        remote.close();
        await server.close();
      }
    });
  }
});

describe('the passthrough and a large answer', () => {
  async function through(name: string, request = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: {} } })): Promise<{ status: number; body: string; complete: boolean; written: number }> {
    const { answer } = answers();
    const server = await scriptedServer(answer);
    const passthrough = new Passthrough({ server: 'remote', url: server.url, headers: {}, maxBodyBytes: 1024 * 1024, maxMessageBytes: LIMIT });
    const front = createServer((req, res) => void passthrough.handle(req, res, requestContext(req, res, silentLogger())));
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(front.address() as { port: number }).port}/`;
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: request,
        signal: AbortSignal.timeout(20_000),
      });
      let body = '';
      let complete = true;
      try {
        body = await res.text();
      } catch {
        complete = false;
      }
      return { status: res.status, body, complete, written: server.bytesWritten() };
    } finally {
      passthrough.close();
      front.closeAllConnections();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await server.close();
    }
  }

  test('a declared answer over the limit gets 502 with a JSON-RPC error naming the limit', async () => {
    const reply = await through('big-declared');
    assert.equal(reply.status, 502);
    assert.match((JSON.parse(reply.body) as { error: { message: string } }).error.message, /larger than berth's limit of 65536 bytes/);
  });

  test('an endless answer is cut after the limit: the client sees it incomplete, the server is hung up on', async () => {
    const reply = await through('big-chunked');
    assert.equal(reply.complete, false);
    assert.ok(reply.written < ENDLESS_BOUND, `${reply.written} bytes written`);
  });

  for (const [name, reason] of [
    ['bad-event', /server remote sent an unusable answer: not JSON/],
    ['not-jsonrpc-event', /server remote sent an unusable answer: not a JSON-RPC 2\.0 message/],
    ['cut-event', /server remote sent an unusable answer: the stream ended in the middle of an event/],
  ] as const) {
    test(`${name}: an SSE event the client could not read becomes an error answer to its request`, async () => {
      const reply = await through(name);
      assert.equal(reply.status, 200);
      const data = reply.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { id: number; error?: { message: string } });
      assert.deepEqual(data.map((d) => d.id), [7], reply.body);
      assert.match(data[0]?.error?.message ?? '', reason);
    });
  }

  test('the request\'s id is read wherever it stands in the body, not only as its first or last key', async () => {
    const reply = await through('cut-event', `{"jsonrpc":"2.0","method":"tools/call","id":7,"params":{"name":"cut-event","arguments":{}}}`);
    const data = reply.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { id: number; error?: { message: string } });
    assert.deepEqual(data.map((d) => d.id), [7], reply.body);
    assert.match(data[0]?.error?.message ?? '', /the stream ended in the middle of an event/);
  });

  test('an SSE event over the limit is replaced by an error answer to its request', async () => {
    const reply = await through('big-event');
    assert.equal(reply.status, 200);
    const data = reply.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { id: number; error?: { message: string } });
    assert.equal(data.length, 1);
    assert.equal(data[0]?.id, 7);
    assert.match(data[0]?.error?.message ?? '', /larger than berth's limit of 65536 bytes/);
  });
});

describe('an SSE remote whose URL carries credentials', () => {
  test('connects, sending them as Basic authorization on the stream and every message', async () => {
    const seen: string[] = [];
    const transports = new Map<string, SSEServerTransport>();
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      if (req.method === 'GET') {
        const transport = new SSEServerTransport('/messages', res);
        transports.set(transport.sessionId, transport);
        void new McpServer({ name: 'sse', version: '1' }).connect(transport);
        return;
      }
      const session = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('sessionId') ?? '';
      void transports.get(session)?.handlePostMessage(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://alice:s%40cret@127.0.0.1:${(server.address() as { port: number }).port}/sse`;
    const remote = connectRemote({ name: 'legacy', url, transport: 'sse', headers: () => ({}), logger: silentLogger() });
    try {
      const mux = await remote.acquire(AbortSignal.timeout(10_000));
      assert.equal((await mux.ready(AbortSignal.timeout(5_000))).serverInfo['name'], 'sse');
      assert.ok(seen.length >= 2, 'the stream and at least the initialize');
      assert.deepEqual(new Set(seen), new Set([`Basic ${Buffer.from('alice:s@cret').toString('base64')}`]));
    } finally {
      remote.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
