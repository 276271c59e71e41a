// The auth benchmark: what each downstream auth provider adds per request.
// One berth (a child process) with the chain [jwt, apiKey, none] in front of
// server-everything; three sessions, one per provider, call `echo` in
// interleaved rounds, so the three modes share one machine state. Reports
// latency (p50, p99) and berth's CPU time per request (from /proc), and what
// apiKey and jwt add over none. The jwt issuer is oidc-provider on
// 127.0.0.1; berth's JWKS cache is warm before measuring.
// Run: node bench/auth.ts [--calls N] [--seconds S]. All traffic is on 127.0.0.1;
// loops are bounded in count and time; everything started here is stopped.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sha256Hex } from '../src/auth/api-key.ts';
import { startIssuer } from '../test/helpers/oidc.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EVERYTHING = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const MODES = ['none', 'apiKey', 'jwt'] as const;
type Mode = (typeof MODES)[number];
const ROUND = 200;
const WARMUP = 300;
const HARD_LIMIT_MS = 180_000;
const TICK_MS = 1000 / 100; // USER_HZ on Linux

const { values } = parseArgs({ options: { calls: { type: 'string', default: '3000' }, seconds: { type: 'string', default: '30' } } });
const calls = Number(values.calls);
const capMs = Number(values.seconds) * 1000;
setTimeout(() => {
  process.stderr.write('bench/auth: hard time limit reached\n');
  process.exit(1);
}, HARD_LIMIT_MS).unref();

const KEY = 'berth_bench-key-0123456789abcdefghij';
const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-auth-'));
const issuer = await startIssuer();
const file = path.join(dir, 'berth.yaml');
writeFileSync(
  file,
  `version: 1
listen: { host: 127.0.0.1, port: 0 }
auth:
  - { type: jwt, issuer: "${issuer.issuer}" }
  - type: apiKey
    keys: [{ user: bench, sha256: "${sha256Hex(KEY)}" }]
  - { type: none }
servers:
  everything:
    type: multi-user
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(EVERYTHING)}, stdio]
`,
);
const berth = spawn(process.execPath, [path.join(ROOT, 'bin/berth.js'), 'serve', file, '--port', '0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
const stop = async (): Promise<void> => {
  berth.kill('SIGTERM');
  await issuer.stop();
  rmSync(dir, { recursive: true, force: true });
};
try {
  const url = await new Promise<string>((resolve, reject) => {
    let err = '';
    berth.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const match = /serving .* at (http:\/\/[^/\s]+)/.exec(err);
      if (match !== null) resolve(match[1]!);
    });
    berth.once('exit', () => reject(new Error(`berth exited: ${err}`)));
    setTimeout(() => reject(new Error('berth did not start')), 30_000).unref();
  });
  const endpoint = `${url}/mcp/everything`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const token = await issuer.token(endpoint);
  const credentials: Record<Mode, Record<string, string>> = { none: {}, apiKey: { 'x-api-key': KEY }, jwt: { authorization: `Bearer ${token}` } };

  const post = (headers: Record<string, string>, body: unknown): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> =>
    new Promise((resolve, reject) => {
      const req = http.request(endpoint, { method: 'POST', agent, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });

  const sessions = {} as Record<Mode, Record<string, string>>;
  for (const mode of MODES) {
    const init = await post(credentials[mode], { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
    if (init.status !== 200) throw new Error(`${mode}: initialize answered ${init.status}: ${init.body}`);
    sessions[mode] = { ...credentials[mode], 'mcp-session-id': String(init.headers['mcp-session-id']), 'mcp-protocol-version': '2025-11-25' };
  }
  let id = 2;
  const call = async (mode: Mode): Promise<void> => {
    const res = await post(sessions[mode], { jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } });
    if (res.status !== 200) throw new Error(`${mode}: tools/call answered ${res.status}`);
  };
  const cpuTicks = (): number => {
    const fields = readFileSync(`/proc/${berth.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  };

  for (let i = 0; i < WARMUP; i++) for (const mode of MODES) await call(mode);
  const latencies: Record<Mode, number[]> = { none: [], apiKey: [], jwt: [] };
  const ticks: Record<Mode, number> = { none: 0, apiKey: 0, jwt: 0 };
  const started = performance.now();
  while (latencies.jwt.length < calls && performance.now() - started < capMs) {
    for (const mode of MODES) {
      const before = cpuTicks();
      for (let i = 0; i < ROUND; i++) {
        const t0 = performance.now();
        await call(mode);
        latencies[mode].push(performance.now() - t0);
      }
      ticks[mode] += cpuTicks() - before;
    }
  }
  const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
  const rows = MODES.map((mode) => ({
    mode,
    calls: latencies[mode].length,
    p50: pct(latencies[mode], 50),
    p99: pct(latencies[mode], 99),
    cpuUs: (ticks[mode] * TICK_MS * 1000) / latencies[mode].length,
  }));
  const none = rows[0]!;
  console.log('mode     calls   p50 ms  p99 ms  berth CPU µs/req  added p50 ms  added CPU µs/req');
  for (const r of rows) {
    console.log(
      `${r.mode.padEnd(8)} ${String(r.calls).padStart(5)} ${r.p50.toFixed(3).padStart(8)} ${r.p99.toFixed(3).padStart(7)} ${r.cpuUs.toFixed(0).padStart(17)} ${(r.p50 - none.p50).toFixed(3).padStart(13)} ${(r.cpuUs - none.cpuUs).toFixed(0).padStart(17)}`,
    );
  }
  agent.destroy();
} finally {
  await stop();
}
