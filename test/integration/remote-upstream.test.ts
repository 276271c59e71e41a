// Remotes held as one client connection (SSE remotes, and the bridge for
// legacy SSE clients of streamable-HTTP remotes) when the remote is down,
// hangs, or comes back: one attempt at a time, fail fast, a clean close.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { silentLogger } from '../../src/observe/log.ts';
import { connectRemote } from '../../src/proxy/upstream/http-upstream.ts';
import { connectClient, everythingServer, freePort, repoRoot, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * A TCP listener that counts connections, and those carrying a request
 * (fetch may open a spare connection that it never uses and that idles out
 * by itself); `onSocket` decides what happens to each.
 */
async function startListener(onSocket: (socket: Socket) => void): Promise<{ port: number; total: () => number; open: () => number; maxOpen: () => number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const all = new Set<Socket>();
  let total = 0;
  let maxOpen = 0;
  const server: Server = createServer((socket) => {
    total++;
    all.add(socket);
    socket.once('close', () => all.delete(socket));
    socket.once('data', () => {
      sockets.add(socket);
      maxOpen = Math.max(maxOpen, sockets.size);
    });
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    total: () => total,
    open: () => sockets.size,
    maxOpen: () => maxOpen,
    async stop() {
      for (const s of all) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const INIT = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });

describe('a remote held as one connection', () => {
  test('a hanging remote is tried one attempt at a time, each bounded, and reported down with its last error', async () => {
    const listener = await startListener(() => undefined); // accepts, never answers
    const upstream = connectRemote({ name: 'hang', url: `http://127.0.0.1:${listener.port}/sse`, transport: 'sse', headers: () => ({}), logger: silentLogger(), connectTimeoutMs: 150, retry: { initialMs: 20, maxMs: 100 } });
    try {
      await waitFor(() => listener.total() >= 4, { timeoutMs: 5_000, message: 'four connections' });
      assert.equal(listener.maxOpen(), 1, 'never more than one attempt in flight');
      const status = upstream.status();
      assert.equal(status.state, 'down');
      assert.match(status.lastError ?? '', /no connection within 150 ms/);
      assert.ok(!Number.isNaN(Date.parse(status.since)));
      // Failing fast runs no timer or I/O before the rejection, so no attempt can start meanwhile.
      const attempts = listener.total();
      await assert.rejects(upstream.acquire(AbortSignal.timeout(5_000)), /server hang is unreachable: no connection within 150 ms/);
      assert.equal(listener.total(), attempts, 'fails fast while down, without waiting for another attempt');
    } finally {
      upstream.close();
      assert.equal(upstream.status().state, 'closed');
      await waitFor(() => listener.open() === 0, { timeoutMs: 2_000, message: 'the attempt in flight closed' });
      await listener.stop();
    }
  });

  test('a refused remote does not pile up reconnecting clients, and close() lets the process exit', async () => {
    const listener = await startListener((socket) => socket.destroy());
    const script = `
      import { connectRemote } from ${JSON.stringify(path.join(repoRoot, 'src/proxy/upstream/http-upstream.ts'))};
      import { silentLogger } from ${JSON.stringify(path.join(repoRoot, 'src/observe/log.ts'))};
      const upstream = connectRemote({ name: 'gone', url: 'http://127.0.0.1:${listener.port}/sse', transport: 'sse', headers: () => ({}), logger: silentLogger() });
      setTimeout(() => upstream.close(), 2_500);
    `;
    const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`still running 6 s after start; ${listener.total()} connection attempts`)), 6_000);
        child.once('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 0);
      // Backoff from 500 ms: a handful of attempts in 2.5 s, not one per leaked client.
      assert.ok(listener.total() >= 2 && listener.total() <= 6, `${listener.total()} connection attempts`);
    } finally {
      child.kill('SIGKILL');
      await listener.stop();
    }
  });

  test('through berth: while a remote is down clients fail at once with the reason; when it comes back they connect', async () => {
    const port = await freePort();
    const dead = await freePort();
    const b = await startTestBerth(`  legacy:\n    type: remote\n    transport: sse\n    url: http://127.0.0.1:${port}/sse\n  bridged:\n    type: remote\n    url: http://127.0.0.1:${dead}/mcp\n`);
    let sse: ChildProcess | undefined;
    try {
      const started = performance.now();
      const res = await fetch(`${b.url}/mcp/legacy`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: INIT,
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(res.status, 503);
      const body = (await res.json()) as { error: { code: number; message: string } };
      assert.equal(body.error.code, -32003);
      assert.match(body.error.message, /server legacy is unreachable: .*(ECONNREFUSED|fetch failed)/);
      assert.ok(performance.now() - started < 3_000, 'no long wait for a remote known to be down');

      const bridged = await fetch(`${b.url}/sse/bridged`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(bridged.status, 503, 'a legacy client of a streamable-HTTP remote that is down');
      assert.match(((await bridged.json()) as { error: { message: string } }).error.message, /server bridged is unreachable/);

      sse = spawn(process.execPath, [everythingServer, 'sse'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
      const client = await waitFor(() => connectClient(b.url, 'legacy'), { timeoutMs: 30_000, intervalMs: 200, message: 'a client connected once the remote is up' });
      const echoed = (await client.callTool({ name: 'echo', arguments: { message: 'back' } })) as { content: { text: string }[] };
      assert.equal(echoed.content[0]?.text, 'Echo: back');
      await client.close();
    } finally {
      await b.stop();
      sse?.kill();
    }
  });
});

/**
 * A streamable-HTTP MCP server written by hand, so each answer is the test's
 * choice: `answer` gets each JSON-RPC message and says what to reply.
 */
async function scriptedServer(answer: (message: { method?: string; id?: unknown }) => { status: number; body?: unknown }): Promise<{ url: string; close(): Promise<void> }> {
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const { status, body } = answer(JSON.parse(text) as { method?: string; id?: unknown });
      if (body === undefined) return void res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 202 ? '' : 'refused on purpose');
      res.writeHead(status, { 'content-type': 'application/json', 'mcp-session-id': 'scripted' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const INITIALIZED = (id: unknown): { status: number; body: unknown } => ({ status: 200, body: { jsonrpc: '2.0', id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'scripted', version: '1' } } } });

describe('the HTTP upstream connection', () => {
  test('an initialize answered with an error fails the attempt, which is retried until one succeeds', async () => {
    let initializes = 0;
    const server = await scriptedServer((m) => {
      if (m.method === 'initialize') return ++initializes < 3 ? { status: 200, body: { jsonrpc: '2.0', id: m.id, error: { code: -32603, message: 'not yet' } } } : INITIALIZED(m.id);
      return { status: 202 };
    });
    const upstream = connectRemote({ name: 'scripted', url: server.url, transport: 'streamable-http', headers: () => ({}), logger: silentLogger(), retry: { initialMs: 10, maxMs: 20 } });
    try {
      await waitFor(() => upstream.status().state === 'down', { message: 'the first attempt failed' });
      assert.match(upstream.status().lastError ?? '', /initialize failed: not yet/);
      await waitFor(() => upstream.status().state === 'connected', { message: 'a later attempt connected' });
      assert.equal(initializes, 3);
      assert.equal(upstream.status().attempts, 0);
      assert.equal((await upstream.mux.ready(AbortSignal.timeout(1_000))).serverInfo['name'], 'scripted');
    } finally {
      upstream.close();
      await server.close();
    }
  });

  test('once connected, a request the server refuses with an HTTP error fails at once, and the connection stays', async () => {
    const server = await scriptedServer((m) => (m.method === 'initialize' ? INITIALIZED(m.id) : m.method === 'tools/call' ? { status: 400 } : { status: 202 }));
    const upstream = connectRemote({ name: 'scripted', url: server.url, transport: 'streamable-http', headers: () => ({}), logger: silentLogger() });
    const client = new Client({ name: 't', version: '1' });
    try {
      const mux = await upstream.acquire(AbortSignal.timeout(5_000));
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      mux.attach(serverSide, 'u');
      await serverSide.start();
      await client.connect(clientSide);
      const started = performance.now();
      await assert.rejects(client.callTool({ name: 'any', arguments: {} }, undefined, { timeout: 10_000 }), /server scripted refused the request: .*HTTP 400/);
      assert.ok(performance.now() - started < 5_000, 'answered at once, not at a deadline');
      assert.equal(upstream.status().state, 'connected');
    } finally {
      await client.close();
      upstream.close();
      await server.close();
    }
  });
});
