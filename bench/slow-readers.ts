// Slow readers: berth's memory when clients open their GET stream and never
// read it while the server floods notifications. Starts berth as its own
// process on the `flood` fixture server, opens N sessions whose GET streams
// are read up to the response headers and then never again, has the server
// broadcast M log notifications of B bytes each (every session's stream
// receives all of them), and reports berth's resident memory before, at its
// peak (VmHWM) and after, plus how many streams berth closed.
// All traffic goes to 127.0.0.1; every loop is bounded in count and time; the
// berth process and the sockets are closed at the end.
//
// Run: node bench/slow-readers.ts [--clients 100] [--count 400] [--bytes 16384]
//      [--berth path/to/bin/berth.js]   (another checkout's berth, to compare)

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FLOOD = path.join(ROOT, 'test/fixtures/children/flood.ts');
const PROTOCOL_VERSION = '2025-06-18';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100' },
    count: { type: 'string', default: '400' },
    bytes: { type: 'string', default: '16384' },
    berth: { type: 'string', default: path.join(ROOT, 'bin/berth.js') },
  },
});
const clients = Number(values.clients);
const count = Number(values.count);
const bytes = Number(values.bytes);

function post(url: string, body: unknown, session?: string): Promise<{ status: number; session: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': PROTOCOL_VERSION };
    if (session !== undefined) headers['mcp-session-id'] = session;
    const req = http.request(url, { method: 'POST', headers, agent: false, timeout: 120_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, session: res.headers['mcp-session-id'] as string | undefined, text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function unreadStream(url: string, session: string): Promise<Socket> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\nMcp-Session-Id: ${session}\r\nMcp-Protocol-Version: ${PROTOCOL_VERSION}\r\n\r\n`);
    });
    socket.once('error', reject);
    socket.once('data', () => {
      socket.pause();
      resolve(socket);
    });
  });
}

function memory(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: Math.round(kb('VmRSS') / 1024), peakMb: Math.round(kb('VmHWM') / 1024) };
}

const dir = mkdtempSync(path.join(tmpdir(), 'berth-slow-readers-'));
const file = path.join(dir, 'berth.yaml');
writeFileSync(file, `version: 1\nlisten: { host: 127.0.0.1, port: 0 }\nservers:\n  flood:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(FLOOD)}]\n`);
const berth = spawn(process.execPath, [values.berth, 'serve', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BERTH_LOG_LEVEL: 'warn' } });
let stderr = '';
berth.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
const sockets: Socket[] = [];
try {
  const deadline = Date.now() + 30_000;
  let base: string | undefined;
  while (base === undefined && Date.now() < deadline) {
    base = /serving .* at (http:\/\/[^\s]+)\/mcp\/<server>/.exec(stderr)?.[1];
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (base === undefined) throw new Error(`berth did not start:\n${stderr}`);
  const url = `${base}/mcp/flood`;
  const pid = berth.pid ?? 0;
  const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'slow-reader', version: '1' } } };
  let caller: string | undefined;
  for (let i = 0; i < clients; i++) {
    const init = await post(url, initialize);
    if (init.session === undefined) throw new Error(`initialize failed: ${init.status} ${init.text}`);
    caller ??= init.session;
    sockets.push(await unreadStream(url, init.session));
  }
  const before = memory(pid);
  const started = Date.now();
  const call = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'flood', arguments: { count, bytes } } }, caller);
  if (call.status !== 200) throw new Error(`tools/call failed: ${call.status} ${call.text}`);
  const after = memory(pid);
  const closed = (stderr.match(/stream closed: the client is not reading it/g) ?? []).length;
  const perClientMb = Math.round((count * bytes) / 2 ** 20);
  console.log(`berth: ${values.berth}`);
  console.log(`${clients} clients that never read; ${count} notifications × ${bytes} B (${perClientMb} MiB per client, ${perClientMb * clients} MiB in all) in ${Date.now() - started} ms`);
  console.log(`RSS before ${before.rssMb} MB, peak ${after.peakMb} MB, after ${after.rssMb} MB; streams closed as slow: ${closed}`);
} finally {
  for (const s of sockets) s.destroy();
  berth.kill('SIGTERM');
  await new Promise((resolve) => berth.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
}
