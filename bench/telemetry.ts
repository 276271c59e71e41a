// What telemetry costs: berth's CPU per call and the call's p50 latency with
// telemetry off, on with sampling 0 (spans not recorded, context still
// propagated, metrics recorded), and on with sampling 1 (every span exported
// over OTLP/HTTP protobuf to a sink on loopback). The workload: one session,
// then tools/call of server-everything's `echo` through berth (stdio
// upstream), at concurrency 1. The three variants run in turn, several
// rounds, so drift on the machine spreads over all of them.
// Run: npm run bench:telemetry [-- --calls N --runs N --seconds S]
// All traffic goes to 127.0.0.1; every loop is bounded in count and time;
// every process started here is stopped at the end.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SELF = fileURLToPath(import.meta.url);
const EVERYTHING = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const HOST = '127.0.0.1';
const WARMUP_CALLS = 300;
const START_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 15_000;

interface Variant {
  readonly id: 'off' | 'sampling-0' | 'sampling-1';
  readonly head: string;
}

const VARIANTS: readonly Variant[] = [
  { id: 'off', head: '' },
  { id: 'sampling-0', head: 'telemetry: { sampling: 0 }\n' },
  { id: 'sampling-1', head: 'telemetry: { sampling: 1 }\n' },
];

// ---------------------------------------------------------------- berth as a child that reports its own CPU

async function berthChild(file: string): Promise<void> {
  const { startBerth } = await import('../src/cli/serve.ts');
  const { silentLogger } = await import('../src/observe/log.ts');
  const berth = await startBerth(file, { port: 0 }, silentLogger());
  process.on('message', (m: { type: string }) => {
    if (m.type === 'cpu') process.send?.({ type: 'cpu', usage: process.cpuUsage() });
    if (m.type === 'stop') void berth.stop().then(() => process.exit(0));
  });
  process.send?.({ type: 'ready', url: berth.url });
}

interface BerthChild {
  readonly url: string;
  cpuMs(): Promise<number>;
  stop(): Promise<void>;
}

async function startBerthChild(head: string, otlp: string): Promise<BerthChild> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-telemetry-'));
  const file = path.join(dir, 'berth.yaml');
  writeFileSync(file, `version: 1\nlisten: { host: ${HOST}, port: 0 }\n${head}servers:\n  everything:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(EVERYTHING)}, stdio]\n`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const child: ChildProcess = spawn(process.execPath, [SELF, '--berth-child', file], { cwd: ROOT, env: head === '' ? env : { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: otlp }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const ask = <T>(type: string, answer: string, pick: (m: Record<string, unknown>) => T): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`berth did not answer ${type}`)), START_TIMEOUT_MS);
      const onMessage = (m: Record<string, unknown>): void => {
        if (m['type'] !== answer) return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(pick(m));
      };
      child.on('message', onMessage);
      if (type !== '') child.send({ type });
    });
  const url = await ask('', 'ready', (m) => String(m['url']));
  return {
    url,
    cpuMs: () => ask('cpu', 'cpu', (m) => {
      const u = m['usage'] as NodeJS.CpuUsage;
      return (u.user + u.system) / 1000;
    }),
    async stop() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- an OTLP sink and a lean MCP client

/** Accepts whatever OTLP/HTTP sends and counts the bytes, so exporting costs what it costs against a fast collector. */
async function startSink(): Promise<{ url: string; bytes: () => number; close(): Promise<void> }> {
  let bytes = 0;
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    url: `http://${HOST}:${(server.address() as AddressInfo).port}`,
    bytes: () => bytes,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function post(url: string, body: unknown, session?: string): Promise<{ status: number; session?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
        ...(session === undefined ? {} : { 'mcp-session-id': session }),
      },
      timeout: REQUEST_TIMEOUT_MS,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const sid = res.headers['mcp-session-id'];
        resolve({ status: res.statusCode ?? 0, text, ...(typeof sid === 'string' ? { session: sid } : {}) });
      });
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function openSession(url: string): Promise<string> {
  const init = await post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  if (init.session === undefined) throw new Error(`initialize failed: ${init.status} ${init.text}`);
  await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, init.session);
  return init.session;
}

// ---------------------------------------------------------------- one cell, then the rounds

interface Cell {
  readonly variant: Variant['id'];
  readonly round: number;
  readonly calls: number;
  readonly p50Ms: number;
  readonly cpuUsPerCall: number;
  readonly exportedBytes: number;
}

async function measure(variant: Variant, round: number, calls: number, seconds: number): Promise<Cell> {
  const sink = await startSink();
  const berth = await startBerthChild(variant.head, sink.url);
  try {
    const url = `${berth.url}/mcp/everything`;
    const session = await openSession(url);
    let id = 1;
    const call = async (): Promise<number> => {
      const t0 = performance.now();
      const reply = await post(url, { jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } }, session);
      if (reply.status !== 200 || !reply.text.includes('"result"')) throw new Error(`call failed: ${reply.status} ${reply.text.slice(0, 200)}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < WARMUP_CALLS; i++) await call();
    const latencies: number[] = [];
    const cpu0 = await berth.cpuMs();
    const bytes0 = sink.bytes();
    const deadline = performance.now() + seconds * 1000;
    while (latencies.length < calls && performance.now() < deadline) latencies.push(await call());
    const cpu = (await berth.cpuMs()) - cpu0;
    latencies.sort((a, b) => a - b);
    return { variant: variant.id, round, calls: latencies.length, p50Ms: latencies[Math.floor(latencies.length / 2)] ?? NaN, cpuUsPerCall: (cpu * 1000) / latencies.length, exportedBytes: sink.bytes() - bytes0 };
  } finally {
    await berth.stop();
    await sink.close();
  }
}

/**
 * The telemetry calls alone, in this process, without I/O: one request's
 * SERVER and CLIENT spans and both durations, as the multiplexer makes them.
 * Spans are recorded (sampling 1) or not (sampling 0) but exported nowhere,
 * so this is the floor the end-to-end figures add export and noise to.
 */
async function inProcess(ratio: number, rounds: number): Promise<number> {
  const { SdkTelemetry } = await import('../src/observe/trace/sdk.ts');
  const { BasicTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler } = await import('@opentelemetry/sdk-trace-base');
  const { MeterProvider } = await import('@opentelemetry/sdk-metrics');
  const tracerProvider = new BasicTracerProvider({ sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }) });
  const tel = new SdkTelemetry({ tracerProvider, meterProvider: new MeterProvider(), capture: new Set(), version: '0' });
  const request = { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } } as const;
  const response = { jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: 'hi' }] } };
  const callee = { server: 'everything', transport: 'pipe' as const, backend: 'local', instance: 'i', protocolVersion: '2025-11-25' };
  const once = (): void => {
    const received = tel.received(request, { server: 'everything', user: 'alice', sessionId: 's', protocolVersion: '2025-11-25', address: HOST });
    const sent = tel.send({ ...request, id: 9 }, received, callee);
    sent.op?.end(response);
    received.end(response);
  };
  for (let i = 0; i < 20_000; i++) once();
  const t0 = process.cpuUsage();
  for (let i = 0; i < rounds; i++) once();
  const used = process.cpuUsage(t0);
  await tel.shutdown();
  return (used.user + used.system) / rounds;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '3000' }, runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '20' } } });
  const calls = Number(values.calls);
  const runs = Number(values.runs);
  const seconds = Number(values.seconds);
  console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; node ${process.version}`);
  console.log(`workload: tools/call echo on a stdio server-everything through berth, one session, concurrency 1; ${calls} calls per cell (cap ${seconds} s) after ${WARMUP_CALLS} warm-up calls; ${runs} rounds`);
  for (const ratio of [0, 1]) {
    const us = await inProcess(ratio, 100_000);
    console.log(`in-process, sampling ${ratio}: ${us.toFixed(1)} µs of CPU per request for its SERVER and CLIENT spans and both durations (no export)`);
  }
  const cells: Cell[] = [];
  for (let round = 1; round <= runs; round++) {
    for (const variant of VARIANTS) {
      const cell = await measure(variant, round, calls, seconds);
      cells.push(cell);
      console.log(`  round ${round} ${variant.id.padEnd(10)} p50 ${cell.p50Ms.toFixed(3)} ms  berth CPU ${cell.cpuUsPerCall.toFixed(0)} µs/call  exported ${(cell.exportedBytes / 1024).toFixed(0)} KiB  (${cell.calls} calls)`);
    }
  }
  console.log('\n| telemetry | p50 ms, median (min–max) | berth CPU µs/call, median (min–max) | vs off (CPU) |');
  console.log('|---|---|---|---|');
  const offCpu = median(cells.filter((c) => c.variant === 'off').map((c) => c.cpuUsPerCall));
  for (const variant of VARIANTS) {
    const mine = cells.filter((c) => c.variant === variant.id);
    const p50 = mine.map((c) => c.p50Ms);
    const cpu = mine.map((c) => c.cpuUsPerCall);
    console.log(`| ${variant.id} | ${median(p50).toFixed(3)} (${Math.min(...p50).toFixed(3)}–${Math.max(...p50).toFixed(3)}) | ${median(cpu).toFixed(0)} (${Math.min(...cpu).toFixed(0)}–${Math.max(...cpu).toFixed(0)}) | ${(median(cpu) / offCpu).toFixed(2)}× |`);
  }
  agent.destroy();
}

if (process.argv[2] === '--berth-child') await berthChild(process.argv[3] ?? '');
else await main();
