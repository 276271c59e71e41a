// The front door as a hostile or careless world meets it: rebinding pages,
// foreign origins, browsers, methods the operations endpoints do not take,
// clients that hoard sessions, never read, or send one byte a second.
// Real berth, real HTTP, loopback only.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sha256Hex } from '../../src/auth/api-key.ts';
import type { Logger } from '../../src/observe/log.ts';
import { createLogger } from '../../src/observe/log.ts';
import { MAX_QUEUED_BYTES } from '../../src/http/write-queue.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingYaml, repoRoot, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP request with exactly these headers (fetch would not let a test set Host). */
function send(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, base), { method: options.method ?? 'GET', headers: options.headers ?? {}, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }), agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const INITIALIZE = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'front-door-test', version: '1' } } });
const MCP_POST = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const ALICE_KEY = 'berth_alice-front-door-0123456789abcdef';

describe('operations endpoints', () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(everythingYaml());
  });
  after(() => b.stop());

  it('/status and /metrics answer loopback clients', async () => {
    assert.equal((await send(b.url, '/status')).status, 200);
    const metrics = await send(b.url, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /berth_sessions_evicted_total/);
  });

  for (const path of ['/status', '/metrics']) {
    it(`${path} refuses a DNS-rebinding Host and a foreign Origin`, async () => {
      const rebinding = await send(b.url, path, { headers: { host: 'attacker.example:8080' } });
      assert.equal(rebinding.status, 403);
      assert.match(rebinding.body, /DNS rebinding/);
      const foreign = await send(b.url, path, { headers: { origin: 'https://attacker.example' } });
      assert.equal(foreign.status, 403);
      assert.equal(foreign.headers['access-control-allow-origin'], undefined);
    });
  }

  it('the probes stay open to any Host: load balancers call them by address', async () => {
    assert.equal((await send(b.url, '/healthz', { headers: { host: '10.1.2.3:8080' } })).status, 200);
  });

  const methods: readonly [string, string][] = [['POST', '/healthz'], ['PUT', '/readyz'], ['DELETE', '/status'], ['POST', '/metrics']];
  for (const [method, path] of methods) {
    it(`${method} ${path}: 405 with Allow: GET, HEAD`, async () => {
      const answer = await send(b.url, path, { method, body: '{}' });
      assert.equal(answer.status, 405);
      assert.equal(answer.headers.allow, 'GET, HEAD');
    });
  }

  it('HEAD works on every operations endpoint, without a body', async () => {
    // /readyz answers 503 until the server's instance is ready.
    await waitFor(async () => (await send(b.url, '/readyz', { method: 'HEAD' })).status === 200, { timeoutMs: 20_000, message: 'berth ready' });
    for (const path of ['/healthz', '/readyz', '/status', '/metrics']) {
      const answer = await send(b.url, path, { method: 'HEAD' });
      assert.equal(answer.status, 200, path);
      assert.equal(answer.body, '', path);
    }
  });
});

describe('Host names', () => {
  it('a berth on 127.0.0.2 serves requests naming its own host, and still refuses others', async () => {
    const b = await startTestBerth(everythingYaml(), 'listen: { host: 127.0.0.2, port: 0 }\n');
    try {
      assert.match(b.url, /^http:\/\/127\.0\.0\.2:/);
      const own = await send(b.url, '/mcp/everything', { method: 'POST', headers: MCP_POST, body: INITIALIZE });
      assert.equal(own.status, 200, own.body);
      assert.equal((await send(b.url, '/status', { headers: { host: `localhost:${new URL(b.url).port}` } })).status, 200);
      assert.equal((await send(b.url, '/status', { headers: { host: 'attacker.example' } })).status, 403);
    } finally {
      await b.stop();
    }
  });
});

describe('CORS for listen.allowedOrigins', () => {
  const APP = 'https://app.example.com';
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(everythingYaml(), `listen: { host: 127.0.0.1, port: 0, allowedOrigins: ["${APP}"] }\n`);
  });
  after(() => b.stop());

  it('answers a preflight from an allowed origin', async () => {
    const answer = await send(b.url, '/mcp/everything', {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, mcp-session-id, mcp-protocol-version' },
    });
    assert.equal(answer.status, 204);
    assert.equal(answer.headers['access-control-allow-origin'], APP);
    assert.equal(answer.headers['access-control-allow-methods'], 'GET, POST, DELETE');
    const allowed = (answer.headers['access-control-allow-headers'] ?? '').split(/,\s*/);
    for (const name of ['content-type', 'authorization', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'mcp-method', 'mcp-name']) assert.ok(allowed.includes(name), `${name} in ${allowed.join(',')}`);
    assert.ok(Number(answer.headers['access-control-max-age']) > 0);
    assert.match(String(answer.headers.vary), /Origin/);
  });

  it('responses to an allowed origin expose the MCP headers, errors included', async () => {
    const init = await send(b.url, '/mcp/everything', { method: 'POST', headers: { ...MCP_POST, origin: APP }, body: INITIALIZE });
    assert.equal(init.status, 200, init.body);
    assert.equal(init.headers['access-control-allow-origin'], APP);
    assert.match(String(init.headers['access-control-expose-headers']), /Mcp-Session-Id/);
    assert.match(String(init.headers['access-control-expose-headers']), /MCP-Protocol-Version/);
    assert.match(String(init.headers['access-control-expose-headers']), /WWW-Authenticate/);
    assert.match(String(init.headers.vary), /Origin/);
    assert.ok(init.headers['mcp-session-id']);
    const missing = await send(b.url, '/mcp/nope', { method: 'POST', headers: { ...MCP_POST, origin: APP }, body: INITIALIZE });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['access-control-allow-origin'], APP);
  });

  it('a disallowed origin gets 403 for the preflight and the request, and no CORS headers', async () => {
    const preflight = await send(b.url, '/mcp/everything', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.headers['access-control-allow-origin'], undefined);
    const post = await send(b.url, '/mcp/everything', { method: 'POST', headers: { ...MCP_POST, origin: 'https://evil.example' }, body: INITIALIZE });
    assert.equal(post.status, 403);
    assert.equal(post.headers['access-control-allow-origin'], undefined);
  });

  it('requests without Origin (not from a browser) get no CORS headers', async () => {
    const answer = await send(b.url, '/status');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['access-control-allow-origin'], undefined);
  });
});

describe('session caps', () => {
  let b: TestBerth;
  before(async () => {
    // A client is an identity: alice with her key, or anonymous, whatever loopback address it comes from.
    b = await startTestBerth(everythingYaml(), `listen: { host: 127.0.0.1, port: 0, maxSessions: 4, maxSessionsPerClient: 2 }\nauth:\n  - type: apiKey\n    keys: [{ user: alice, groups: [admin], sha256: "${sha256Hex(ALICE_KEY)}" }]\n  - type: none\n`);
  });
  after(() => b.stop());

  /** Opens a session from `localAddress`, as alice with `headers` or else anonymously. */
  async function open(localAddress: string, headers: Record<string, string> = {}): Promise<string> {
    const answer = await send(b.url, '/mcp/everything', { method: 'POST', headers: { ...MCP_POST, ...headers }, body: INITIALIZE, localAddress });
    assert.equal(answer.status, 200, answer.body);
    return String(answer.headers['mcp-session-id']);
  }

  function ping(session: string, localAddress: string, headers: Record<string, string> = {}): Promise<number> {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' });
    return send(b.url, '/mcp/everything', { method: 'POST', headers: { ...MCP_POST, ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, body, localAddress }).then((a) => a.status);
  }

  it('one client opening many sessions evicts only its own, logged and counted', async () => {
    const alice = { 'x-api-key': ALICE_KEY };
    const victim = await open('127.0.0.1', alice);
    const hoarded: string[] = [];
    // Anonymous from ten loopback addresses: still one client.
    for (let i = 0; i < 10; i++) hoarded.push(await open(`127.0.0.${3 + i}`));
    assert.equal(await ping(victim, '127.0.0.1', alice), 200, 'the other client\'s session is alive');
    assert.equal(await ping(hoarded[0] ?? '', '127.0.0.3'), 404, 'the hoarder\'s oldest session was closed');
    assert.equal(await ping(hoarded[9] ?? '', '127.0.0.12'), 200);
    assert.equal(b.berth.sessions.size, 3);
    const metrics = (await send(b.url, '/metrics', { headers: alice })).body;
    assert.match(metrics, /berth_sessions_evicted_total\{reason="client-limit"\} 8/);
  });
});

/** A logger whose lines the test reads. */
function capturedLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: 'warn', destination: sink }), lines };
}

const FLOOD = path.join(repoRoot, 'test/fixtures/children/flood.ts');
const floodYaml = `  flood:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(FLOOD)}]\n`;

/** Opens a GET stream on a raw socket, reads its response headers, then never reads again. */
function openUnreadStream(base: string, path: string, session: string): Promise<Socket> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\nMcp-Session-Id: ${session}\r\nMcp-Protocol-Version: 2025-06-18\r\n\r\n`);
    });
    socket.once('error', reject);
    socket.once('data', (head: Buffer) => {
      socket.pause();
      if (!head.toString('latin1').startsWith('HTTP/1.1 200')) reject(new Error(`GET stream refused: ${head.toString('latin1').split('\r\n')[0] ?? ''}`));
      else resolve(socket);
    });
  });
}

describe('a GET stream that is never read', () => {
  it('is closed once berth holds more than the bound for it, with a log line; the session lives on', async () => {
    const { logger, lines } = capturedLogger();
    const b = await startTestBerth(floodYaml, '', { logger });
    const sockets: Socket[] = [];
    try {
      const init = await send(b.url, '/mcp/flood', { method: 'POST', headers: MCP_POST, body: INITIALIZE });
      assert.equal(init.status, 200, init.body);
      const session = String(init.headers['mcp-session-id']);
      const headers = { ...MCP_POST, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' };
      sockets.push(await openUnreadStream(b.url, '/mcp/flood', session));
      // 2,000 × 16 KiB: far beyond the bound plus what the kernel's socket buffers take.
      const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flood', arguments: { count: 2_000, bytes: 16_384 } } });
      const called = await send(b.url, '/mcp/flood', { method: 'POST', headers, body: call });
      assert.equal(called.status, 200, called.body);
      const closed = await waitFor(() => lines.find((l) => l['msg'] === 'stream closed: the client is not reading it'), { timeoutMs: 20_000, message: 'the slow-reader log line' });
      assert.ok(Number(closed['queuedBytes']) <= MAX_QUEUED_BYTES + 20_000, `queued ${String(closed['queuedBytes'])} bytes`);
      // The transport forgot the stream: the client may open a new one (a second live one would be 409).
      sockets.push(await openUnreadStream(b.url, '/mcp/flood', session));
    } finally {
      for (const s of sockets) s.destroy();
      await b.stop();
    }
  });
});

/** Sends `head`, then `drip` one byte at a time every 100 ms (at most 100 bytes); resolves with what berth answered and when the socket closed. */
function slowSender(base: string, head: string, drip: string): Promise<{ answer: string; ms: number }> {
  const { hostname, port } = new URL(base);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let answer = '';
    let at = 0;
    const socket = connect(Number(port), hostname, () => socket.write(head));
    const timer = setInterval(() => {
      if (answer === '' && at < Math.min(drip.length, 100) && !socket.destroyed) socket.write(drip[at++] ?? '');
    }, 100);
    socket.setEncoding('latin1').on('data', (chunk: string) => (answer += chunk));
    // A reset after the answer arrived is a close; before it, a failure.
    socket.on('error', (err) => (answer === '' ? reject(err) : undefined));
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ answer, ms: Date.now() - started });
    });
  });
}

describe('request deadlines', () => {
  it('a slow body or slow headers get 408 and a closed socket; a long-lived response stream is unaffected', async () => {
    const b = await startTestBerth(floodYaml, '', { serve: { requestTimeoutMs: 1_000 } });
    const { hostname, port } = new URL(b.url);
    let stream: Socket | undefined;
    try {
      const init = await send(b.url, '/mcp/flood', { method: 'POST', headers: MCP_POST, body: INITIALIZE });
      const session = String(init.headers['mcp-session-id']);
      stream = await openUnreadStream(b.url, '/mcp/flood', session);
      let events = '';
      stream.setEncoding('utf8').on('data', (chunk: string) => (events += chunk));
      stream.resume();

      const body = await slowSender(b.url, `POST /mcp/flood HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n`, INITIALIZE);
      assert.match(body.answer, /^HTTP\/1\.1 408/);
      assert.ok(body.ms < 5_000, `closed after ${body.ms} ms`);
      const headers = await slowSender(b.url, 'GET /status HTTP/1.1\r\n', `Host: ${hostname}:${port}\r\nX-Slow: ${'a'.repeat(200)}`);
      assert.match(headers.answer, /^HTTP\/1\.1 408/);
      const garbage = await slowSender(b.url, 'NOT HTTP AT ALL\r\n\r\n', '');
      assert.match(garbage.answer, /^HTTP\/1\.1 400/);

      // The GET stream has now been open for more than twice the deadline and still delivers.
      const call = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'flood', arguments: { count: 1, bytes: 10 } } });
      const called = await send(b.url, '/mcp/flood', { method: 'POST', headers: { ...MCP_POST, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, body: call });
      assert.equal(called.status, 200, called.body);
      await waitFor(() => events.includes('notifications/message'), { message: 'a notification on the long-lived GET stream' });
      assert.equal(stream.destroyed, false);
    } finally {
      stream?.destroy();
      await b.stop();
    }
  });
});
