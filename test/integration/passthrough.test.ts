// The remote-route passthrough against real upstreams on loopback, behind
// berth's real HTTP front: headers, bodies, streams, client drops, pool and
// deadline limits, per-session order, shutdown; then server-everything and
// the SDK client through a real berth.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import pino from 'pino';
import { createAuthenticator } from '../../src/auth/chain.ts';
import { Gate } from '../../src/auth/gate.ts';
import { createMetrics } from '../../src/observe/metrics.ts';
import { originPolicy } from '../../src/http/guard.ts';
import { Passthrough } from '../../src/proxy/routes/passthrough.ts';
import type { PassthroughOptions } from '../../src/proxy/routes/passthrough.ts';
import { createProxyServer } from '../../src/proxy/server.ts';
import type { RouteHandler } from '../../src/proxy/routes/table.ts';
import { configText, everythingServer, freePort, repoRoot } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

async function stopServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface Front {
  readonly url: string;
  readonly passthrough: Passthrough;
  readonly logs: { msg: string; [k: string]: unknown }[];
  stop(): Promise<void>;
}

/** berth's HTTP front with one remote route, `/mcp/remote`, passed through to `upstream`. */
async function startFront(upstream: string, options: Partial<PassthroughOptions> = {}): Promise<Front> {
  const passthrough = new Passthrough({ server: 'remote', url: `${upstream}/mcp`, headers: { 'X-Berth-Test': 'yes' }, maxBodyBytes: 1024 * 1024, ...options });
  const logs: Front['logs'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Front['logs'][number]);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const handler = { kind: 'passthrough', passthrough, close: () => passthrough.close() } as unknown as RouteHandler;
  const table = { generation: 1, handlers: new Map([['remote', handler]]) };
  const server = createProxyServer({
    logger,
    metrics: createMetrics({ defaults: false }),
    state: { table: () => table, originPolicy: () => originPolicy({ host: '127.0.0.1' }), gate: () => new Gate({ authenticator: createAuthenticator(undefined, { logger }), logger }), readiness: () => ({ ready: true, notReady: [] }), status: async () => ({}) },
  });
  const url = `${await listen(server)}/mcp/remote`;
  return {
    url,
    passthrough,
    logs,
    async stop() {
      passthrough.close();
      await stopServer(server);
    },
  };
}

async function startUpstream(handler: Handler): Promise<{ url: string; server: Server; stop(): Promise<void> }> {
  const server = http.createServer(handler);
  const url = await listen(server);
  return { url, server, stop: () => stopServer(server) };
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request on its own connection, headers exactly as given. */
function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | string; chunks?: { size: number; count: number } } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'POST', headers: options.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.chunks !== undefined) {
      const chunk = Buffer.alloc(options.chunks.size, 'x');
      let left = options.chunks.count;
      const pump = (): void => {
        while (left > 0) {
          left--;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    } else {
      req.end(options.body);
    }
  });
}

function rpcError(reply: Reply): { code: number; message: string } {
  return (JSON.parse(reply.body) as { error: { code: number; message: string } }).error;
}

const sse = (res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.flushHeaders();
};

describe('the remote passthrough', () => {
  test('hop-by-hop headers stay on their hop; a client’s Connection: close leaves the upstream connection reusable', async () => {
    const seen: { headers: IncomingHttpHeaders; port: number | undefined }[] = [];
    const upstream = await startUpstream((req, res) => {
      seen.push({ headers: req.headers, port: req.socket.remotePort });
      req.resume();
      req.on('end', () => res.writeHead(200, { connection: 'keep-alive, x-hop-up', 'x-hop-up': '1', 'keep-alive': 'timeout=5', 'x-end': 'yes', 'content-type': 'application/json' }).end('{}'));
    });
    const front = await startFront(upstream.url);
    try {
      const headers = {
        connection: 'close, x-hop-down',
        'x-hop-down': '1',
        te: 'trailers',
        'keep-alive': 'timeout=1',
        'proxy-authorization': 'Basic cHJveHk=',
        authorization: 'Bearer client-secret',
        cookie: 'sid=1',
        'x-api-key': 'k',
        'x-request-id': 'client-id',
        'x-berth-test': 'from-client',
        'content-type': 'application/json',
      };
      const replies = [await send(front.url, { headers, body: '{}' }), await send(front.url, { headers, body: '{}' })];
      for (const r of replies) {
        assert.equal(r.status, 200);
        assert.equal(r.headers['x-end'], 'yes');
        assert.equal(r.headers['x-hop-up'], undefined, 'a header the upstream named in Connection stays upstream');
        assert.equal(r.headers['keep-alive'], undefined);
      }
      assert.equal(seen.length, 2);
      for (const { headers: h } of seen) {
        for (const name of ['x-hop-down', 'te', 'keep-alive', 'proxy-authorization', 'authorization', 'cookie', 'x-api-key', 'x-request-id']) assert.equal(h[name], undefined, `${name} reached the upstream`);
        assert.notEqual(h.connection, 'close');
        assert.equal(h['x-berth-test'], 'yes', 'the configured header wins');
        assert.equal(h['content-type'], 'application/json');
      }
      assert.equal(seen[0]?.port, seen[1]?.port, 'the second request reused the upstream connection');
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('a remote\'s cookies never reach the client: they would land on berth\'s origin, beside berth\'s own', async () => {
    const upstream = await startUpstream((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['__Host-berth-csrf=planted; Path=/; Secure', 'session=upstream; Path=/'] }).end('{}'));
    });
    const front = await startFront(upstream.url);
    try {
      const reply = await send(front.url, { headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['set-cookie'], undefined);
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('a chunked body over maxBodyBytes gets 413 and the upstream never gets a whole request', async () => {
    let received = 0;
    let complete = 0;
    const upstream = await startUpstream((req, res) => {
      req.on('data', (d: Buffer) => (received += d.length));
      req.on('end', () => {
        complete++;
        res.end('{}');
      });
    });
    const front = await startFront(upstream.url, { maxBodyBytes: 1024 * 1024 });
    try {
      const reply = await send(front.url, { headers: { 'content-type': 'application/json' }, chunks: { size: 64 * 1024, count: 160 } });
      assert.equal(reply.status, 413);
      assert.equal(rpcError(reply).code, -32600);
      assert.match(rpcError(reply).message, /over 1048576 bytes/);
      assert.equal(complete, 0, 'the upstream request was aborted');
      assert.ok(received <= 1024 * 1024, `upstream got ${received} bytes`);
      const declared = await send(front.url, { headers: { 'content-type': 'application/json', 'content-length': String(2 * 1024 * 1024) }, body: '' });
      assert.equal(declared.status, 413);
      const small = await send(front.url, { headers: { 'content-type': 'application/json' }, chunks: { size: 1024, count: 4 } });
      assert.equal(small.status, 200, 'a chunked body under the limit goes through');
      assert.equal(complete, 1);
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('a stream’s response headers reach the client before its first event', async () => {
    const upstream = await startUpstream((_req, res) => sse(res));
    const front = await startFront(upstream.url);
    try {
      const abort = new AbortController();
      const res = await fetch(front.url, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.any([abort.signal, AbortSignal.timeout(3_000)]) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      abort.abort();
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('a client that drops its stream or its POST aborts the upstream request; 300 drops later the route answers', async () => {
    let open = 0;
    let posts = 0;
    const upstream = await startUpstream((req, res) => {
      open++;
      res.once('close', () => open--);
      if (req.headers['x-answer'] === 'now') return void res.end('{"ok":true}');
      if (req.method === 'GET') return sse(res);
      posts++; // a POST that is never answered
    });
    const front = await startFront(upstream.url);
    try {
      for (let i = 0; i < 300; i++) {
        const abort = new AbortController();
        await fetch(front.url, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.any([abort.signal, AbortSignal.timeout(5_000)]) });
        abort.abort();
      }
      for (let i = 0; i < 20; i++) {
        const abort = new AbortController();
        const pending = fetch(front.url, { method: 'POST', body: '{}', signal: abort.signal }).catch(() => undefined);
        await waitFor(() => posts > i, { message: 'the upstream got the POST' });
        abort.abort();
        await pending;
      }
      await waitFor(() => open === 0, { timeoutMs: 5_000, message: `every upstream request closed (open: ${open})` });
      const res = await fetch(front.url, { method: 'POST', body: '{}', headers: { 'x-answer': 'now' }, signal: AbortSignal.timeout(5_000) });
      assert.deepEqual(await res.json(), { ok: true });
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('a full pool is a logged, bounded wait ending in 503', async () => {
    let streaming = 0;
    const upstream = await startUpstream((req, res) => {
      if (req.method !== 'GET') return void res.end('{"ok":true}');
      streaming++;
      res.once('close', () => streaming--);
      sse(res);
    });
    const front = await startFront(upstream.url, { maxSockets: 2, poolWaitMs: 300 });
    try {
      const streams = [new AbortController(), new AbortController()];
      // Held, not dropped: undici cancels the body of a Response the garbage collector takes, which would free a connection.
      const held: Response[] = [];
      for (const s of streams) held.push(await fetch(front.url, { headers: { accept: 'text/event-stream' }, signal: s.signal }));
      assert.equal(streaming, 2);
      const started = Date.now();
      const refused = await send(front.url, { body: '{}' });
      assert.equal(refused.status, 503);
      assert.equal(rpcError(refused).code, -32003);
      assert.match(rpcError(refused).message, /upstream of remote is busy: all 2 connections stayed in use for 300 ms/);
      assert.ok(Date.now() - started < 3_000);
      assert.ok(front.logs.some((l) => l.msg === 'upstream connection pool full; request waits'), 'the wait is logged');
      streams[0]?.abort();
      await waitFor(() => streaming === 1, { message: 'the dropped stream freed its upstream connection' });
      assert.equal((await send(front.url, { body: '{}' })).status, 200, 'a freed connection serves the next request');
      streams[1]?.abort();
      assert.equal(held.length, 2);
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('requests that wait for a pooled connection cannot take berth down', async () => {
    const seen: IncomingHttpHeaders[] = [];
    let held: ServerResponse[] | undefined = [];
    const release = (): void => {
      for (const res of held ?? []) res.end('{"ok":true}');
      held = undefined;
    };
    const upstream = await startUpstream((req, res) => {
      seen.push(req.headers);
      req.resume();
      // Answer nothing until every connection of the pool is busy, so that the rest must wait for one.
      if (held === undefined) return void res.end('{"ok":true}');
      held.push(res);
      if (held.length === 256) release();
    });
    setTimeout(release, 10_000).unref();
    const front = await startFront(upstream.url);
    try {
      // More than the 256 connections kept to the upstream, all at once, each with a body and a credential.
      const replies = await Promise.all(
        Array.from({ length: 300 }, (_, i) => send(front.url, { headers: { 'content-type': 'application/json', authorization: 'Bearer client-secret' }, body: JSON.stringify({ i }) })),
      );
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
      assert.equal(seen.length, 300);
      assert.ok(seen.every((h) => h.authorization === undefined), 'no waiting request leaked its credential');
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('an upstream that hangs before answering gets a 504 after the deadline; a started stream runs on', async () => {
    const upstream = await startUpstream((req, res) => {
      if (req.method !== 'GET') return; // never answered
      sse(res);
      res.write('data: first\n\n');
      setTimeout(() => res.write('data: second\n\n'), 600).unref();
    });
    const front = await startFront(upstream.url, { headersTimeoutMs: 200 });
    try {
      const reply = await send(front.url, { body: '{}' });
      assert.equal(reply.status, 504);
      assert.equal(rpcError(reply).code, -32003);
      assert.match(rpcError(reply).message, /sent no answer within 200 ms/);
      const res = await fetch(front.url, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(5_000) });
      const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      while (!text.includes('second')) {
        const { value, done } = await reader.read();
        assert.equal(done, false, `the stream ended early after ${JSON.stringify(text)}`);
        text += value;
      }
      await reader.cancel();
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('each session’s requests reach the upstream in the order berth received them', async () => {
    const arrivals: string[] = [];
    const upstream = await startUpstream((req, res) => {
      if (req.headers['mcp-session-id'] === undefined) {
        // Opens the session the client names: berth serves a session only to the caller it was opened for.
        req.resume();
        return void res.writeHead(200, { 'mcp-session-id': String(req.headers['x-open']) }).end('{}');
      }
      const session = String(req.headers['mcp-session-id']);
      arrivals.push(`${req.method} ${session}`);
      if (req.method === 'GET') {
        // Slow to answer the stream: the session's next request must wait for it.
        setTimeout(() => {
          arrivals.push(`GET ${session} answered`);
          sse(res);
        }, 300).unref();
        return;
      }
      req.resume();
      res.end('{}');
    });
    const front = await startFront(upstream.url);
    try {
      for (const id of ['s1', 's2']) assert.equal((await send(front.url, { headers: { 'x-open': id }, body: '{}' })).status, 200);
      const abort = new AbortController();
      const stream = fetch(front.url, { headers: { accept: 'text/event-stream', 'mcp-session-id': 's1' }, signal: AbortSignal.any([abort.signal, AbortSignal.timeout(5_000)]) });
      await waitFor(() => arrivals.includes('GET s1'), { message: 'the GET upstream' });
      const [mine, other] = await Promise.all([send(front.url, { headers: { 'mcp-session-id': 's1' }, body: '{}' }), send(front.url, { headers: { 'mcp-session-id': 's2' }, body: '{}' })]);
      assert.equal(mine.status, 200);
      assert.equal(other.status, 200);
      await stream;
      abort.abort();
      // s1's POST waited for its GET's answer; s2 was not held up by it.
      assert.deepEqual(arrivals, ['GET s1', 'POST s2', 'GET s1 answered', 'POST s1']);
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });

  test('close() ends open streams and upstream connections at once', async () => {
    let open = 0;
    const upstream = await startUpstream((_req, res) => {
      open++;
      res.once('close', () => open--);
      sse(res);
      res.write('data: hello\n\n');
    });
    const front = await startFront(upstream.url);
    try {
      const res = await fetch(front.url, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(5_000) });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      const started = performance.now();
      front.passthrough.close();
      const ended = await reader.read().then(({ done }) => done, () => true);
      const took = performance.now() - started;
      assert.ok(ended, 'the client stream ended');
      assert.ok(took < 1_000, `close took ${took} ms`);
      await waitFor(() => open === 0, { timeoutMs: 1_000, message: 'the upstream connection closed' });
      const after = await send(front.url, { body: '{}' });
      assert.equal(after.status, 503);
    } finally {
      await front.stop();
      await upstream.stop();
    }
  });
});

describe('server-everything behind a berth process', () => {
  let upstream: ChildProcess;
  let berth: ChildProcess;
  let url: string;
  let stderr = '';
  let dir: string;
  before(async () => {
    const port = await freePort();
    upstream = spawn(process.execPath, [everythingServer, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    await waitFor(() => fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' }).then(() => true), { timeoutMs: 20_000, message: 'upstream listening' });
    dir = mkdtempSync(path.join(tmpdir(), 'berth-passthrough-'));
    const file = path.join(dir, 'berth.yaml');
    writeFileSync(file, configText(`  remote:\n    type: remote\n    url: http://127.0.0.1:${port}/mcp\n`));
    berth = spawn(process.execPath, [path.join(repoRoot, 'bin/berth.js'), 'serve', file, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    berth.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    url = await waitFor(() => /serving .* at (http:\/\/\S+)\/mcp/.exec(stderr)?.[1], { timeoutMs: 30_000, message: 'berth serving' });
  });
  after(() => {
    berth.kill('SIGKILL');
    upstream.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a client that calls a sampling tool right after connecting never loses the sampling request (50 tries)', async () => {
    let lost = 0;
    for (let i = 0; i < 50; i++) {
      const client = new Client({ name: 'berth-test', version: '1.0.0' }, { capabilities: { sampling: {} } });
      client.setRequestHandler(CreateMessageRequestSchema, async () => ({ model: 'test-model', role: 'assistant', content: { type: 'text', text: `sampled ${i}` } }));
      await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp/remote`)));
      try {
        const result = (await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } }, undefined, { timeout: 10_000 })) as { content: { text?: string }[] };
        if (!result.content.map((c) => c.text ?? '').join('').includes(`sampled ${i}`)) lost++;
      } catch {
        lost++;
      } finally {
        await client.close();
      }
    }
    assert.equal(lost, 0, `${lost} of 50 sampling requests were lost`);
  });

  test('berth prints nothing but its JSON log while passing requests through', async () => {
    const client = new Client({ name: 'berth-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp/remote`)));
    await client.callTool({ name: 'echo', arguments: { message: 'quiet' } });
    await client.close();
    const exited = new Promise((resolve) => berth.once('exit', resolve));
    berth.kill('SIGTERM');
    await exited;
    const foreign = stderr.split('\n').filter((line) => line !== '' && !line.startsWith('berth: serving ') && !isJson(line));
    assert.deepEqual(foreign, []);
  });
});

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
