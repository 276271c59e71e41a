// What 1,000 users of one single-user server cost berth itself on the local
// backend: each user gets an own instance of a tiny stdio server (POSIX sh,
// test/fixtures/children/tiny-mcp.sh, about 1 MB resident), started on the
// user's first call. berth runs in this process, so its heap is measured after
// a full GC before and after the users arrive; the children's memory is
// reported apart, since it is the server's cost, not berth's bookkeeping.
// Per user: initialize (which starts the instance), notifications/initialized,
// tools/call; the time to the first tool result is the start latency. Users
// are identified by a trusted identity header (the cheapest provider, so auth
// is not what is measured) and arrive `--concurrency` at a time.
// Run: npm run bench:users [-- --users 1000 --concurrency 4 --seconds 300].
// All traffic is on 127.0.0.1; loops are bounded in count and time; every
// instance is stopped at the end.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBerth } from '../src/cli/serve.ts';
import { silentLogger } from '../src/observe/log.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TINY = path.join(ROOT, 'test/fixtures/children/tiny-mcp.sh');
const WARMUP_USERS = 20;
const WARM_SAMPLE = 100;
const ACCEPT = 'application/json, text/event-stream';

const { values } = parseArgs({ options: { users: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '4' }, seconds: { type: 'string', default: '300' } } });
const users = Number(values.users);
const concurrency = Number(values.concurrency);
const capMs = Number(values.seconds) * 1000;
if (!(users > 0 && concurrency > 0 && capMs > 0)) throw new Error('--users, --concurrency and --seconds must be positive numbers');
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) process.stderr.write('bench/users: run with --expose-gc (npm run bench:users does) for heap figures after a full GC\n');
setTimeout(() => {
  process.stderr.write('bench/users: hard time limit reached\n');
  process.exit(1);
}, capMs + 120_000).unref();

interface Memory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}

function memory(): Memory {
  // Twice: the first collection can leave finalizers whose memory the second frees.
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

/** Resident memory of this process's children (the instances), from /proc; undefined elsewhere. */
function childrenRss(): { count: number; bytes: number } | undefined {
  try {
    const pids = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    const page = 4096;
    let bytes = 0;
    for (const pid of pids) {
      try {
        bytes += Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * page;
      } catch {
        // exited meanwhile
      }
    }
    return { count: pids.length, bytes };
  } catch {
    return undefined;
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-users-'));
const file = path.join(dir, 'berth.yaml');
writeFileSync(
  file,
  `version: 1
listen: { host: 127.0.0.1, port: 0, maxSessions: ${users + WARMUP_USERS + 100} }
state: { path: ${JSON.stringify(path.join(dir, 'state.json'))} }
auth:
  - type: header
    trustedProxies: [127.0.0.1/32]
servers:
  tiny:
    type: single-user
    runtime: command
    command: /bin/sh
    args: [${JSON.stringify(TINY)}]
    idleTimeout: 1h
    maxInstances: ${users + WARMUP_USERS}
`,
);

const loadBefore = os.loadavg();
const berth = await startBerth(file, { port: 0 }, silentLogger());
const route = `${berth.url}/mcp/tiny`;

async function post(user: string, body: unknown, session?: string): Promise<Response> {
  const res = await fetch(route, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, 'x-forwarded-user': user, ...(session === undefined ? {} : { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }) },
    body: JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`${user}: HTTP ${res.status}: ${await res.text()}`);
  return res;
}

/** One user's first contact; resolves with the session and the times to initialize and to the first tool result (ms). */
async function firstCall(user: string): Promise<{ session: string; initMs: number; callMs: number }> {
  const start = performance.now();
  const init = await post(user, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  const session = init.headers.get('mcp-session-id') ?? '';
  await init.arrayBuffer();
  const initMs = performance.now() - start;
  await (await post(user, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).arrayBuffer();
  const answer = await (await post(user, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: {} } }, session)).text();
  if (!answer.includes('"ok"')) throw new Error(`${user}: unexpected answer ${answer.slice(0, 200)}`);
  return { session, initMs, callMs: performance.now() - start };
}

/** Runs `count` users named `${prefix}-<i>`, `concurrency` at a time, until done or the deadline. */
async function arrive(prefix: string, count: number, deadline: number): Promise<{ user: string; session: string; initMs: number; callMs: number }[]> {
  const done: { user: string; session: string; initMs: number; callMs: number }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline) {
      const user = `${prefix}-${next++}`;
      done.push({ user, ...(await firstCall(user)) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return done;
}

try {
  await arrive('warmup', WARMUP_USERS, performance.now() + capMs);
  const before = memory();
  const started = performance.now();
  const arrived = await arrive('user', users, started + capMs);
  const wallMs = performance.now() - started;
  const after = memory();
  const children = childrenRss();
  // The same users again: their instances run, so this is the proxy's own cost per call.
  const warm: number[] = [];
  for (const { user, session } of arrived.slice(0, WARM_SAMPLE)) {
    const t = performance.now();
    await (await post(user, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: {} } }, session)).arrayBuffer();
    warm.push(performance.now() - t);
  }
  const n = arrived.length;
  const calls = arrived.map((a) => a.callMs).sort((a, b) => a - b);
  // Does starting get slower as users accumulate? The first and the last tenth, in arrival order.
  const tenth = Math.max(1, Math.floor(n / 10));
  const p50Of = (list: readonly { callMs: number }[]): number => +percentile(list.map((a) => a.callMs).sort((a, b) => a - b), 50).toFixed(1);
  const inits = arrived.map((a) => a.initMs).sort((a, b) => a - b);
  warm.sort((a, b) => a - b);
  const perUser = (key: keyof Memory): number => (after[key] - before[key]) / n;
  const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
  const result = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    loadavg: { before: loadBefore.map((l) => +l.toFixed(2)), after: os.loadavg().map((l) => +l.toFixed(2)) },
    users: n,
    concurrency,
    wallSeconds: +(wallMs / 1000).toFixed(1),
    instances: berth.pool.status().filter((u) => u.user !== undefined && u.state === 'ready').length,
    sessions: berth.sessions.size,
    perUser: { heapKiB: +(perUser('heapUsed') / 1024).toFixed(1), externalKiB: +(perUser('external') / 1024).toFixed(1), rssKiB: +(perUser('rss') / 1024).toFixed(1) },
    berth: { heapMiB: +(after.heapUsed / 2 ** 20).toFixed(1), rssMiB: +(after.rss / 2 ** 20).toFixed(1) },
    children: children === undefined ? undefined : { count: children.count, rssMiB: +(children.bytes / 2 ** 20).toFixed(0) },
    firstCallMs: { p50: +percentile(calls, 50).toFixed(1), p95: +percentile(calls, 95).toFixed(1), max: +(calls.at(-1) ?? NaN).toFixed(1) },
    firstCallP50ByArrival: { firstTenth: p50Of(arrived.slice(0, tenth)), lastTenth: p50Of(arrived.slice(-tenth)) },
    initializeMs: { p50: +percentile(inits, 50).toFixed(1), p95: +percentile(inits, 95).toFixed(1) },
    warmCallMs: { p50: +percentile(warm, 50).toFixed(2), p95: +percentile(warm, 95).toFixed(2) },
  };
  console.log(`cpu: ${result.cpu} (${result.cores} cores), node ${result.node}; load average ${result.loadavg.before.join(' ')} → ${result.loadavg.after.join(' ')}`);
  console.log(`users: ${n} of ${users} in ${result.wallSeconds} s (concurrency ${concurrency}); ready per-user instances: ${result.instances}; sessions: ${result.sessions}`);
  console.log(`berth per user: heap ${kib(perUser('heapUsed'))}, external ${kib(perUser('external'))}, rss ${kib(perUser('rss'))} (after a full GC; berth heap ${result.berth.heapMiB} MiB, rss ${result.berth.rssMiB} MiB)`);
  if (children !== undefined) console.log(`instances (not berth): ${children.count} processes, ${result.children?.rssMiB} MiB resident together`);
  console.log(`first call (initialize → first tool result, instance start included): p50 ${result.firstCallMs.p50} ms, p95 ${result.firstCallMs.p95} ms, max ${result.firstCallMs.max} ms; initialize alone p50 ${result.initializeMs.p50} ms`);
  console.log(`first call p50 of the first tenth of users ${result.firstCallP50ByArrival.firstTenth} ms, of the last tenth ${result.firstCallP50ByArrival.lastTenth} ms`);
  console.log(`a later call of a running instance: p50 ${result.warmCallMs.p50} ms, p95 ${result.warmCallMs.p95} ms`);
  console.log(JSON.stringify(result));
  if (n < users) process.exitCode = 1;
} finally {
  await berth.stop();
  rmSync(dir, { recursive: true, force: true });
}
