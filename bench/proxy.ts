// The proxy benchmark: one MCP workload (initialize once per worker, then
// tools/call of server-everything's trivial `echo`) at concurrency 1 and 32,
// straight to the server and through berth, supergateway and mcp-proxy, on
// this machine, in one run; then berth's memory per idle session.
// Run: npm run bench:proxy [-- options]; see bench/RESULTS.md for the method
// and the figures. All traffic goes to 127.0.0.1; every loop is bounded in
// count and time; every process started here is stopped at the end.
//
// Options:
//   --calls N        measured calls per cell (default 10000)
//   --seconds S      time cap per measured cell (default 10)
//   --only a,b       run only targets whose id contains one of these
//                    (ids: direct-sdk, direct-raw, berth-stdio, supergateway,
//                    mcp-proxy, direct-http, berth-http, floor-http, memory)
//   --sessions N     idle sessions for the memory figure (default 10000; 0 skips)
//   --profile DIR    run berth with --cpu-prof into DIR and print its hot spots
//   --json FILE      also write the figures as JSON

import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SELF = fileURLToPath(import.meta.url);
const NODE = process.execPath;
const EVERYTHING = path.join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const SUPERGATEWAY = path.join(ROOT, 'node_modules/supergateway/dist/index.js');
const MCP_PROXY = path.join(ROOT, 'node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs');
const PROTOCOL_VERSION = '2025-11-25';
const HOST = '127.0.0.1';

const CONCURRENCIES = [1, 32] as const;
const WARMUP_CALLS = 500;
const WARMUP_MS = 2_000;
const REQUEST_TIMEOUT_MS = 15_000;
const INIT_TIMEOUT_MS = 30_000;
const START_TIMEOUT_MS = 30_000;
const MEMORY_CONCURRENCY = 32;
const MEMORY_WARM_SESSIONS = 200;
const MEMORY_TIME_CAP_MS = 60_000;
/** The whole run stops by itself past this, whatever it is doing. */
const HARD_LIMIT_MS = 300_000;

const GOALS = { httpAddedP50Ms: 0.3, httpThroughputPct: 90, stdioVsPeer: 1.5, kbPerSession: 50 } as const;

// ---------------------------------------------------------------- processes

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly stderr: string[];
  exited: boolean;
}

const procs = new Set<Proc>();

/** Starts a process in its own process group; stdin stays open (supergateway exits on EOF). */
function startProc(name: string, args: string[], options: { env?: Record<string, string>; ipc?: boolean; stdout?: boolean } = {}): Proc {
  const stdout = options.stdout === true ? 'pipe' : 'ignore';
  const child = spawn(NODE, args, {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    detached: true,
    stdio: options.ipc === true ? ['pipe', stdout, 'pipe', 'ipc'] : ['pipe', stdout, 'pipe'],
  });
  const proc: Proc = { name, child, stderr: [], exited: false };
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    proc.stderr.push(chunk);
    if (proc.stderr.length > 40) proc.stderr.shift();
  });
  child.stdin?.on('error', () => undefined);
  child.once('exit', () => {
    proc.exited = true;
  });
  procs.add(proc);
  return proc;
}

/** Pids of every live descendant of `pid`, from /proc (children in other process groups included). */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Busy and steal CPU time of the whole machine so far, in ms, from /proc/stat. */
function machineCpuMs(): { busy: number; steal: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, _idle = 0, _iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  return { busy: ((user + nice + system + irq + softirq) * 1000) / CLK_TCK, steal: (steal * 1000) / CLK_TCK };
}

/** CPU time (user + system) the processes used so far, in ms, from /proc; gone processes count 0. */
function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return (ticks * 1000) / CLK_TCK;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGTERM (or the given polite stop), a grace period, then SIGKILL of the process, its group and every descendant seen. */
async function stopProc(proc: Proc, graceMs = 8_000, polite?: () => void): Promise<void> {
  const pid = proc.child.pid;
  procs.delete(proc);
  if (pid === undefined) return;
  const family = descendants(pid);
  if (!proc.exited) {
    if (polite === undefined) signal(pid, 'SIGTERM');
    else polite();
    const deadline = Date.now() + graceMs;
    while (!proc.exited && Date.now() < deadline) await sleep(25);
  }
  signal(-pid, 'SIGKILL');
  for (const p of family) if (alive(p)) signal(p, 'SIGKILL');
  proc.child.stdin?.destroy();
}

function killAllNow(): void {
  for (const proc of procs) {
    const pid = proc.child.pid;
    if (pid === undefined) continue;
    for (const p of descendants(pid)) signal(p, 'SIGKILL');
    signal(-pid, 'SIGKILL');
  }
  procs.clear();
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- berth child

/** Runs in the forked child: berth in-process, memory readings over IPC. */
async function berthChild(file: string): Promise<void> {
  const { startBerth } = await import('../src/cli/serve.ts');
  const { createLogger } = await import('../src/observe/log.ts');
  // The logger `berth serve` uses by default (JSON at info, to stderr).
  const berth = await startBerth(file, { port: 0 }, createLogger({ format: 'json', level: 'info' }));
  const gc = (globalThis as { gc?: () => void }).gc;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), 10_000).unref();
    void berth.stop().finally(() => process.exit(0));
  };
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') stop();
    if (m.type === 'mem') {
      void (async () => {
        for (let i = 0; i < 4; i++) {
          gc?.();
          await new Promise((resolve) => setImmediate(resolve));
        }
        process.send?.({ type: 'mem', usage: process.memoryUsage(), sessions: berth.sessions.size, gc: gc !== undefined });
      })();
    }
  });
  process.once('SIGTERM', stop);
  process.once('disconnect', stop);
  process.send?.({ type: 'ready', url: berth.url });
}

interface BerthProc {
  readonly proc: Proc;
  readonly url: string;
  memory(): Promise<{ usage: NodeJS.MemoryUsage; sessions: number; gc: boolean }>;
  stop(): Promise<void>;
}

async function startBerthProc(servers: string, profileDir?: string): Promise<BerthProc> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-'));
  const file = path.join(dir, 'berth.yaml');
  writeFileSync(file, `version: 1\nlisten: { host: ${HOST}, port: 0 }\nservers:\n${servers}`);
  const flags = ['--expose-gc', ...(profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`])];
  const proc = startProc('berth', [...flags, SELF, '--berth-child', file], { ipc: true });
  const child = proc.child;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`berth did not start in ${START_TIMEOUT_MS} ms: ${proc.stderr.join('')}`)), START_TIMEOUT_MS);
    child.on('message', (m: { type: string; url?: string }) => {
      if (m.type === 'ready' && m.url !== undefined) {
        clearTimeout(timer);
        resolve(m.url);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`berth exited (${code}) before listening: ${proc.stderr.join('')}`));
    });
  });
  return {
    proc,
    url,
    memory: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('berth did not report memory')), 30_000);
        const onMessage = (m: { type: string; usage: NodeJS.MemoryUsage; sessions: number; gc: boolean }): void => {
          if (m.type !== 'mem') return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve(m);
        };
        child.on('message', onMessage);
        child.send({ type: 'mem' });
      }),
    async stop() {
      await stopProc(proc, 12_000, () => child.connected && child.send({ type: 'stop' }));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- lean MCP-over-HTTP client

const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });

interface HttpReply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
}

function post(url: URL, headers: Record<string, string>, body: string, timeoutMs = REQUEST_TIMEOUT_MS, method = 'POST'): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method, agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The JSON-RPC messages of a reply: a JSON body (object or batch) or an SSE stream's `data:` events. */
function messagesOf(reply: HttpReply): unknown[] {
  const type = reply.headers['content-type'] ?? '';
  if (type.startsWith('application/json')) {
    const value: unknown = JSON.parse(reply.text);
    return Array.isArray(value) ? value : [value];
  }
  if (!type.startsWith('text/event-stream')) return [];
  const out: unknown[] = [];
  let data: string[] = [];
  // Events with empty data (resumability priming events) carry no message.
  const flush = (): void => {
    const text = data.join('\n');
    if (text !== '') out.push(JSON.parse(text));
    data = [];
  };
  for (const line of reply.text.split('\n')) {
    if (line.startsWith('data:')) data.push(line.slice(line.charCodeAt(5) === 32 ? 6 : 5).replace(/\r$/, ''));
    else if (line === '' || line === '\r') {
      flush();
    }
  }
  flush();
  return out;
}

interface RpcMessage {
  id?: unknown;
  result?: { content?: { text?: unknown }[]; protocolVersion?: unknown };
  error?: { message?: unknown };
}

function responseTo(reply: HttpReply, id: number): RpcMessage {
  const found = messagesOf(reply).find((m) => (m as RpcMessage).id === id) as RpcMessage | undefined;
  if (found === undefined) throw new Error(`HTTP ${reply.status}, no response to id ${id}: ${reply.text.slice(0, 300)}`);
  if (found.error !== undefined) throw new Error(`JSON-RPC error: ${JSON.stringify(found.error)}`);
  return found;
}

/** One streamable-HTTP MCP session, driven with raw POSTs. */
class HttpSession {
  readonly url: URL;
  #headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  #nextId = 1;

  constructor(url: string) {
    this.url = new URL(url);
  }

  async initialize(): Promise<void> {
    const id = this.#nextId++;
    const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'berth-bench', version: '1.0.0' } } });
    const reply = await post(this.url, this.#headers, body, INIT_TIMEOUT_MS);
    const result = responseTo(reply, id).result;
    const session = reply.headers['mcp-session-id'];
    const version = typeof result?.protocolVersion === 'string' ? result.protocolVersion : PROTOCOL_VERSION;
    this.#headers = { ...this.#headers, 'mcp-protocol-version': version, ...(typeof session === 'string' ? { 'mcp-session-id': session } : {}) };
    const ack = await post(this.url, this.#headers, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    if (ack.status !== 202 && ack.status !== 200) throw new Error(`notifications/initialized: HTTP ${ack.status} ${ack.text.slice(0, 200)}`);
  }

  async echo(): Promise<void> {
    const id = this.#nextId++;
    const message = `m${id}`;
    const reply = await post(this.url, this.#headers, `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"message":"${message}"}}}`);
    const text = responseTo(reply, id).result?.content?.[0]?.text;
    if (text !== `Echo: ${message}`) throw new Error(`unexpected echo result: ${reply.text.slice(0, 200)}`);
  }

  /** Ends the session (DELETE); failures are ignored. */
  async close(): Promise<void> {
    if (this.#headers['mcp-session-id'] === undefined) return;
    await post(this.url, this.#headers, '', 5_000, 'DELETE').catch(() => undefined);
  }
}

/** Initializes sessions until there are `n`, `parallel` at a time. */
async function openSessions(into: HttpSession[], url: string, n: number, parallel = 8): Promise<void> {
  while (into.length < n) {
    const batch = Math.min(parallel, n - into.length);
    const fresh = Array.from({ length: batch }, () => new HttpSession(url));
    await Promise.all(fresh.map((s) => s.initialize()));
    into.push(...fresh);
  }
}

/** Retries initialize until the endpoint answers (peers need a moment to listen). */
async function waitForMcp(url: string, proc?: Proc): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    if (proc?.exited) throw new Error(`${proc.name} exited: ${proc.stderr.join('').slice(-2000)}`);
    try {
      const probe = new HttpSession(url);
      await probe.initialize();
      await probe.close();
      return;
    } catch (err) {
      last = err;
      await sleep(100);
    }
  }
  throw new Error(`${url} not answering after ${START_TIMEOUT_MS} ms: ${(last as Error)?.message}${proc === undefined ? '' : `\n${proc.stderr.join('').slice(-2000)}`}`);
}

// ---------------------------------------------------------------- targets

type Call = () => Promise<void>;

interface Target {
  readonly id: string;
  readonly group: 'stdio' | 'http';
  readonly label: string;
  /** How it was run, for the record. */
  readonly how: string;
  /** One call function per worker (each on its own session where the target has sessions). */
  callers(n: number): Promise<Call[]>;
  /** The proxy's process (none for direct targets) and the MCP server processes behind it, for CPU accounting. */
  pids(): { proxy?: number; upstream: number[] };
  close(): Promise<void>;
}

/** (a) the SDK Client + StdioClientTransport, in this process, on one child. */
async function directSdk(): Promise<Target> {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
  const client = new Client({ name: 'berth-bench', version: '1.0.0' }, { capabilities: {} });
  const transport = new StdioClientTransport({ command: NODE, args: [EVERYTHING, 'stdio'], stderr: 'ignore', cwd: ROOT });
  await client.connect(transport);
  const pid = transport.pid;
  let n = 0;
  const call: Call = async () => {
    const message = `m${n++}`;
    const result = await client.callTool({ name: 'echo', arguments: { message } });
    const content = result.content as { text?: string }[] | undefined;
    if (content?.[0]?.text !== `Echo: ${message}`) throw new Error(`unexpected echo result: ${JSON.stringify(result)}`);
  };
  return {
    id: 'direct-sdk',
    group: 'stdio',
    label: 'direct (SDK Client, in-process)',
    how: '`Client` + `StdioClientTransport` in the load generator, one child, calls issued concurrently on the one client',
    callers: async (count) => Array.from({ length: count }, () => call),
    pids: () => ({ upstream: pid === null ? [] : [pid] }),
    async close() {
      await client.close().catch(() => undefined);
      if (pid !== null && alive(pid)) signal(pid, 'SIGKILL');
    },
  };
}

/** (a') newline-delimited JSON straight on the child's pipes: the upstream's own ceiling. */
async function directRawTarget(): Promise<Target> {
  const proc = startProc('everything-raw', [EVERYTHING, 'stdio'], { stdout: true });
  const child = proc.child as ChildProcess & { stdin: NodeJS.WritableStream; stdout: NodeJS.ReadableStream & { setEncoding(e: BufferEncoding): void } };
  const pending = new Map<number, (m: RpcMessage) => void>();
  let buffer = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim() === '') continue;
      const m = JSON.parse(line) as RpcMessage;
      if (typeof m.id === 'number') pending.get(m.id)?.(m);
    }
  });
  let nextId = 1;
  const request = (method: string, params: unknown): Promise<RpcMessage> => {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`no answer to ${method} in ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, (m) => {
        clearTimeout(timer);
        pending.delete(id);
        if (m.error !== undefined) reject(new Error(JSON.stringify(m.error)));
        else resolve(m);
      });
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  };
  await request('initialize', { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'berth-bench', version: '1.0.0' } });
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  let n = 0;
  const call: Call = async () => {
    const message = `m${n++}`;
    const m = await request('tools/call', { name: 'echo', arguments: { message } });
    if (m.result?.content?.[0]?.text !== `Echo: ${message}`) throw new Error(`unexpected echo result: ${JSON.stringify(m)}`);
  };
  return {
    id: 'direct-raw',
    group: 'stdio',
    label: 'direct (raw JSON lines)',
    how: 'JSON lines written to and read from the child\'s pipes by the load generator (no SDK): the upstream\'s own ceiling',
    callers: async (count) => Array.from({ length: count }, () => call),
    pids: () => ({ upstream: proc.child.pid === undefined ? [] : [proc.child.pid] }),
    close: () => stopProc(proc, 2_000),
  };
}

/** A target that is an HTTP endpoint with one session per worker. */
function httpTarget(fields: { id: string; group: 'stdio' | 'http'; label: string; how: string; url: string; pids: Target['pids']; close: () => Promise<void> }): Target {
  const sessions: HttpSession[] = [];
  return {
    ...fields,
    async callers(count) {
      await openSessions(sessions, fields.url, count);
      return sessions.slice(0, count).map((s) => () => s.echo());
    },
  };
}

/** A proxy process and everything it spawned (the MCP servers it runs). */
function proxyPids(proc: Proc): () => { proxy?: number; upstream: number[] } {
  return () => (proc.child.pid === undefined ? { upstream: [] } : { proxy: proc.child.pid, upstream: descendants(proc.child.pid) });
}

function everythingStdioYaml(name: string): string {
  return `  ${name}:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(NODE)}\n    args: [${JSON.stringify(EVERYTHING)}, stdio]\n`;
}

async function berthStdio(profileDir?: string): Promise<Target> {
  const berth = await startBerthProc(everythingStdioYaml('everything'), profileDir);
  const url = `${berth.url}/mcp/everything`;
  await waitForMcp(url, berth.proc);
  return httpTarget({
    id: 'berth-stdio',
    group: 'stdio',
    label: 'berth',
    how: '`type: multi-user, runtime: command` (one child, every session multiplexed onto it); berth in its own process, default JSON logger at info',
    url,
    pids: proxyPids(berth.proc),
    close: () => berth.stop(),
  });
}

async function supergateway(): Promise<Target> {
  const port = await freePort();
  const proc = startProc('supergateway', [SUPERGATEWAY, '--stdio', `${JSON.stringify(NODE)} ${JSON.stringify(EVERYTHING)} stdio`, '--outputTransport', 'streamableHttp', '--stateful', '--port', String(port), '--logLevel', 'none']);
  const url = `http://${HOST}:${port}/mcp`;
  await waitForMcp(url, proc);
  return httpTarget({
    id: 'supergateway',
    group: 'stdio',
    label: 'supergateway',
    how: '`--stdio "<node> <everything> stdio" --outputTransport streamableHttp --stateful --logLevel none` (stateful: one child per session; stateless would spawn a child per POST)',
    url,
    pids: proxyPids(proc),
    close: () => stopProc(proc),
  });
}

async function mcpProxy(): Promise<Target> {
  const port = await freePort();
  const proc = startProc('mcp-proxy', [MCP_PROXY, '--host', HOST, '--port', String(port), '--server', 'stream', '--no-eventStore', '--', NODE, EVERYTHING, 'stdio']);
  const url = `http://${HOST}:${port}/mcp`;
  await waitForMcp(url, proc);
  return httpTarget({
    id: 'mcp-proxy',
    group: 'stdio',
    label: 'mcp-proxy',
    how: '`--host 127.0.0.1 --port P --server stream --no-eventStore -- <node> <everything> stdio` (stateful sessions, one shared child)',
    url,
    pids: proxyPids(proc),
    close: () => stopProc(proc),
  });
}

interface HttpUpstream {
  readonly url: string;
  readonly proc: Proc;
}

async function startHttpUpstream(): Promise<HttpUpstream> {
  const port = await freePort();
  const proc = startProc('everything-http', [EVERYTHING, 'streamableHttp'], { env: { PORT: String(port) } });
  const url = `http://${HOST}:${port}/mcp`;
  await waitForMcp(url, proc);
  return { url, proc };
}

function directHttp(upstream: HttpUpstream): Target {
  return httpTarget({
    id: 'direct-http',
    group: 'http',
    label: 'direct',
    how: 'server-everything `streamableHttp` (PORT=P), one session per worker',
    url: upstream.url,
    pids: () => ({ upstream: upstream.proc.child.pid === undefined ? [] : [upstream.proc.child.pid] }),
    close: async () => undefined,
  });
}

async function berthHttp(upstream: HttpUpstream, profileDir?: string): Promise<Target> {
  const berth = await startBerthProc(`  remote:\n    type: remote\n    url: ${upstream.url}\n`, profileDir);
  const url = `${berth.url}/mcp/remote`;
  await waitForMcp(url, berth.proc);
  return httpTarget({
    id: 'berth-http',
    group: 'http',
    label: 'berth (remote passthrough)',
    how: '`type: remote, url: http://127.0.0.1:P/mcp`: sessions are the upstream\'s own, berth streams bytes both ways',
    url,
    pids: () => ({ ...(berth.proc.child.pid === undefined ? {} : { proxy: berth.proc.child.pid }), upstream: upstream.proc.child.pid === undefined ? [] : [upstream.proc.child.pid] }),
    close: () => berth.stop(),
  });
}

/** The least a Node proxy can do: pipe each request over a keep-alive agent. A reference, not a product. */
const FLOOR_PROXY = `
import http from 'node:http';
const target = new URL(process.env.TARGET);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
http.createServer((req, res) => {
  const up = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: req.method, headers: req.headers, agent }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

async function floorHttp(upstream: HttpUpstream): Promise<Target> {
  const port = await freePort();
  const proc = startProc('floor-proxy', ['--input-type=module', '-e', FLOOR_PROXY], { env: { TARGET: upstream.url, PORT: String(port) } });
  const url = `http://${HOST}:${port}/mcp`;
  await waitForMcp(url, proc);
  return httpTarget({
    id: 'floor-http',
    group: 'http',
    label: 'bare node:http proxy (reference)',
    how: 'a 12-line `node:http` proxy piping each request over a keep-alive agent: what any Node proxy costs at least, for scale',
    url,
    pids: () => ({ ...(proc.child.pid === undefined ? {} : { proxy: proc.child.pid }), upstream: upstream.proc.child.pid === undefined ? [] : [upstream.proc.child.pid] }),
    close: () => stopProc(proc),
  });
}

// ---------------------------------------------------------------- measuring

interface Cell {
  readonly target: string;
  readonly group: 'stdio' | 'http';
  readonly label: string;
  readonly concurrency: number;
  readonly calls: number;
  readonly errors: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
  readonly throughput: number;
  /** CPU time per completed call, µs: the proxy process, the MCP server process(es), the load generator. */
  readonly cpu: { readonly proxy?: number; readonly upstream: number; readonly client: number };
  /** CPU used meanwhile by processes outside the benchmark, and stolen by the hypervisor, in % of one core: noise. */
  readonly otherCpuPct: number;
  readonly stealPct: number;
  readonly firstError?: string;
}

/** Runs the workers until `count` calls were started or `ms` passed; latencies in ms. */
async function drive(callers: Call[], count: number, ms: number): Promise<{ latencies: Float64Array; done: number; errors: number; seconds: number; firstError?: string }> {
  const latencies = new Float64Array(count);
  let issued = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    callers.map(async (call) => {
      while (issued < count && performance.now() < deadline) {
        issued++;
        const t0 = performance.now();
        try {
          await call();
          latencies[done++] = performance.now() - t0;
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
          if (errors > 50) return;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { latencies: latencies.subarray(0, done), done, errors, seconds, ...(firstError === undefined ? {} : { firstError }) };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function measure(target: Target, concurrency: number, opts: Options): Promise<Cell> {
  const callers = await target.callers(concurrency);
  await drive(callers, Math.max(WARMUP_CALLS, concurrency * 20), WARMUP_MS);
  const pids = target.pids();
  const cpu0 = { proxy: cpuMs(pids.proxy === undefined ? [] : [pids.proxy]), upstream: cpuMs(pids.upstream), client: process.cpuUsage(), machine: machineCpuMs() };
  const run = await drive(callers, opts.calls, opts.seconds * 1000);
  const clientUsage = process.cpuUsage(cpu0.client);
  const machine = machineCpuMs();
  const perCall = (ms: number): number => (1000 * ms) / Math.max(1, run.done);
  const used = { proxy: pids.proxy === undefined ? 0 : cpuMs([pids.proxy]) - cpu0.proxy, upstream: cpuMs(pids.upstream) - cpu0.upstream, client: (clientUsage.user + clientUsage.system) / 1000 };
  const cpu = {
    ...(pids.proxy === undefined ? {} : { proxy: perCall(used.proxy) }),
    upstream: perCall(used.upstream),
    client: perCall(used.client),
  };
  const wallMs = run.seconds * 1000;
  const otherCpuPct = Math.max(0, (100 * (machine.busy - cpu0.machine.busy - used.proxy - used.upstream - used.client)) / wallMs);
  const stealPct = (100 * (machine.steal - cpu0.machine.steal)) / wallMs;
  const sorted = run.latencies.slice().sort();
  const cell: Cell = {
    target: target.id,
    group: target.group,
    label: target.label,
    concurrency,
    calls: run.done,
    errors: run.errors,
    seconds: run.seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    throughput: run.done / run.seconds,
    cpu,
    otherCpuPct,
    stealPct,
    ...(run.firstError === undefined ? {} : { firstError: run.firstError }),
  };
  console.error(`  ${target.id.padEnd(13)} c=${String(concurrency).padEnd(3)} p50 ${cell.p50.toFixed(3)} ms  p99 ${cell.p99.toFixed(3)} ms  ${cell.throughput.toFixed(0)} calls/s  CPU µs/call ${cell.cpu.proxy === undefined ? '' : `proxy ${cell.cpu.proxy.toFixed(0)} `}server ${cell.cpu.upstream.toFixed(0)} client ${cell.cpu.client.toFixed(0)}, other load ${cell.otherCpuPct.toFixed(0)} %  (${cell.calls} calls in ${cell.seconds.toFixed(1)} s${cell.errors > 0 ? `, ${cell.errors} errors: ${cell.firstError}` : ''})`);
  return cell;
}

// ---------------------------------------------------------------- memory

interface MemoryFigure {
  readonly sessions: number;
  readonly seconds: number;
  readonly rssKb: number;
  readonly heapKb: number;
  readonly externalKb: number;
  readonly before: NodeJS.MemoryUsage;
  readonly after: NodeJS.MemoryUsage;
  readonly berthSessions: number;
}

async function memoryPerSession(n: number): Promise<MemoryFigure> {
  const berth = await startBerthProc(everythingStdioYaml('everything'));
  try {
    const url = `${berth.url}/mcp/everything`;
    await waitForMcp(url, berth.proc);
    // Warm the route (JIT, pools) before the baseline; these sessions stay open.
    const warm: HttpSession[] = [];
    await openSessions(warm, url, MEMORY_WARM_SESSIONS, MEMORY_CONCURRENCY);
    const before = await berth.memory();
    const started = performance.now();
    const deadline = started + MEMORY_TIME_CAP_MS;
    let opened = 0;
    let errors = 0;
    await Promise.all(
      Array.from({ length: MEMORY_CONCURRENCY }, async () => {
        while (opened < n && performance.now() < deadline && errors < 50) {
          opened++;
          try {
            await new HttpSession(url).initialize();
          } catch (err) {
            errors++;
            opened--;
            if (errors === 1) console.error(`  session open failed: ${(err as Error).message}`);
          }
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const after = await berth.memory();
    if (!after.gc) console.error('  warning: gc() not exposed in berth; memory figures include garbage');
    const kb = (a: number, b: number): number => (b - a) / 1024 / opened;
    return {
      sessions: opened,
      seconds,
      rssKb: kb(before.usage.rss, after.usage.rss),
      heapKb: kb(before.usage.heapUsed, after.usage.heapUsed),
      externalKb: kb(before.usage.external, after.usage.external),
      before: before.usage,
      after: after.usage,
      berthSessions: after.sessions,
    };
  } finally {
    await berth.stop();
  }
}

// ---------------------------------------------------------------- profile summary

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Self time by function, and inclusive time of berth's own functions, from .cpuprofile files. */
function summarizeProfiles(dir: string): string {
  const lines: string[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const where = (n: ProfileNode): string => {
      const f = n.callFrame;
      const file = f.url === '' ? '' : f.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
      return `${f.functionName || '(anonymous)'} ${file === '' ? '' : `${file}:${f.lineNumber + 1}`}`.trim();
    };
    const self = new Map<string, number>();
    const inclusive = new Map<string, number>();
    // Self time charged to the nearest frame in berth's sources or a package: who causes the runtime's work.
    const charged = new Map<string, number>();
    let total = 0;
    let idle = 0;
    profile.samples.forEach((id, i) => {
      const dt = profile.timeDeltas[i] ?? 0;
      const node = byId.get(id);
      if (node === undefined) return;
      total += dt;
      const key = where(node);
      if (node.callFrame.functionName === '(idle)') idle += dt;
      self.set(key, (self.get(key) ?? 0) + dt);
      const seen = new Set<string>();
      let owner: string | undefined;
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const n = byId.get(cur);
        if (n === undefined) break;
        const k = where(n);
        if (owner === undefined && (n.callFrame.url.includes('/src/') || n.callFrame.url.includes('node_modules'))) owner = k;
        if (!seen.has(k) && (n.callFrame.url.includes('/src/') || n.callFrame.url.includes('node_modules'))) {
          seen.add(k);
          inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
        }
      }
      if (node.callFrame.functionName !== '(idle)') {
        const to = owner ?? `(runtime) ${node.callFrame.functionName}`;
        charged.set(to, (charged.get(to) ?? 0) + dt);
      }
    });
    const busy = total - idle;
    const pct = (v: number): string => `${((100 * v) / busy).toFixed(1).padStart(5)} %`;
    lines.push(`profile ${name}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy`);
    lines.push('  self time (share of busy):');
    for (const [k, v] of [...self].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, 25)) lines.push(`    ${pct(v)}  ${k}`);
    lines.push('  self time charged to the nearest berth or package frame (share of busy):');
    for (const [k, v] of [...charged].sort((a, b) => b[1] - a[1]).slice(0, 25)) lines.push(`    ${pct(v)}  ${k}`);
    lines.push('  inclusive time of berth sources (share of busy):');
    for (const [k, v] of [...inclusive].filter(([k]) => k.includes('src/')).sort((a, b) => b[1] - a[1]).slice(0, 20)) lines.push(`    ${pct(v)}  ${k}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- report

interface Options {
  readonly calls: number;
  readonly seconds: number;
  readonly only: string[] | undefined;
  readonly sessions: number;
  readonly profile: string | undefined;
  readonly json: string | undefined;
}

const fmt = (n: number, digits = 3): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');

function report(cells: Cell[], memory: MemoryFigure | undefined, targets: Map<string, string>): string {
  const out: string[] = [];
  const row = (cols: string[]): string => `| ${cols.join(' | ')} |`;
  out.push(row(['upstream', 'target', 'conc', 'p50 ms', 'p99 ms', 'calls/s', 'proxy CPU µs/call', 'server CPU µs/call', 'client CPU µs/call', 'calls', 'errors']));
  out.push(row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  for (const c of cells) {
    out.push(row([c.group, c.label, String(c.concurrency), fmt(c.p50), fmt(c.p99), c.throughput.toFixed(0), c.cpu.proxy === undefined ? '–' : c.cpu.proxy.toFixed(0), c.cpu.upstream.toFixed(0), c.cpu.client.toFixed(0), String(c.calls), String(c.errors)]));
  }
  out.push('');
  const noisy = cells.filter((c) => c.otherCpuPct > 15 || c.stealPct > 5);
  if (noisy.length > 0) {
    out.push(`- warning: other processes used CPU during ${noisy.map((c) => `${c.target} c=${c.concurrency} (${c.otherCpuPct.toFixed(0)} % of a core${c.stealPct > 5 ? `, ${c.stealPct.toFixed(0)} % stolen` : ''})`).join(', ')}: those figures are disturbed; run again on a quiet machine`);
  }
  const cell = (id: string, conc: number): Cell | undefined => cells.find((c) => c.target === id && c.concurrency === conc);
  for (const conc of CONCURRENCIES) {
    const berth = cell('berth-stdio', conc);
    const direct = cell('direct-sdk', conc);
    if (berth !== undefined && direct !== undefined) {
      out.push(`- stdio c=${conc}: berth vs direct (SDK): +${fmt(berth.p50 - direct.p50)} ms p50, ${((100 * berth.throughput) / direct.throughput).toFixed(0)} % throughput`);
    }
    const raw = cell('direct-raw', conc);
    if (berth !== undefined && raw !== undefined) {
      out.push(`- stdio c=${conc}: berth vs direct (raw lines): +${fmt(berth.p50 - raw.p50)} ms p50, ${((100 * berth.throughput) / raw.throughput).toFixed(0)} % throughput`);
    }
    const peers = ['supergateway', 'mcp-proxy'].map((id) => cell(id, conc)).filter((c): c is Cell => c !== undefined && c.errors === 0);
    const best = peers.sort((a, b) => b.throughput - a.throughput)[0];
    if (berth !== undefined && best !== undefined) {
      const x = berth.throughput / best.throughput;
      out.push(`- stdio c=${conc}: berth vs best peer (${best.label}, ${best.throughput.toFixed(0)} calls/s): ${x.toFixed(2)}× throughput, p50 ${fmt(berth.p50)} vs ${fmt(best.p50)} ms — goal ≥ ${GOALS.stdioVsPeer}×: ${verdict(x >= GOALS.stdioVsPeer && berth.errors === 0)}`);
    }
  }
  for (const conc of CONCURRENCIES) {
    const berth = cell('berth-http', conc);
    const direct = cell('direct-http', conc);
    if (berth === undefined || direct === undefined) continue;
    const added = berth.p50 - direct.p50;
    const pct = (100 * berth.throughput) / direct.throughput;
    out.push(`- HTTP c=${conc}: berth vs direct: +${fmt(added)} ms p50 (goal ≤ ${GOALS.httpAddedP50Ms} ms: ${verdict(added <= GOALS.httpAddedP50Ms)}), ${pct.toFixed(0)} % throughput (goal ≥ ${GOALS.httpThroughputPct} %: ${verdict(pct >= GOALS.httpThroughputPct && berth.errors === 0)})`);
    const floor = cell('floor-http', conc);
    if (floor !== undefined) out.push(`  (for scale, the bare node:http proxy: +${fmt(floor.p50 - direct.p50)} ms p50, ${((100 * floor.throughput) / direct.throughput).toFixed(0)} % throughput, ${floor.cpu.proxy?.toFixed(0) ?? '?'} vs berth's ${berth.cpu.proxy?.toFixed(0) ?? '?'} µs CPU per call)`);
  }
  if (memory !== undefined) {
    out.push(
      `- memory: ${memory.sessions.toLocaleString('en-US')} idle sessions on berth's stdio route (opened in ${memory.seconds.toFixed(1)} s; berth holds ${memory.berthSessions}): ` +
        `${memory.rssKb.toFixed(1)} KB RSS, ${memory.heapKb.toFixed(1)} KB heap, ${memory.externalKb.toFixed(2)} KB external per session — goal ≤ ${GOALS.kbPerSession} KB: ${verdict(Math.max(memory.rssKb, memory.heapKb + memory.externalKb) <= GOALS.kbPerSession)}`,
    );
    const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;
    out.push(`  (after full GC: RSS ${mb(memory.before.rss)} → ${mb(memory.after.rss)}, heap used ${mb(memory.before.heapUsed)} → ${mb(memory.after.heapUsed)})`);
  }
  out.push('');
  out.push('How each target ran:');
  for (const [id, how] of targets) out.push(`- ${id}: ${how}`);
  return out.join('\n');
}

// ---------------------------------------------------------------- main

/** The commit measured, `+dirty` when the work tree differs from it. */
function revision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return `${head}${dirty ? '+dirty src' : ''}`;
  } catch {
    return 'unknown';
  }
}

function options(): Options {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      calls: { type: 'string', default: '10000' },
      seconds: { type: 'string', default: '10' },
      only: { type: 'string' },
      sessions: { type: 'string', default: '10000' },
      profile: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const positive = (s: string, name: string, max: number): number => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0 || n > max) throw new Error(`--${name} must be a number from 0 to ${max}`);
    return n;
  };
  return {
    calls: Math.max(1, positive(values.calls, 'calls', 1_000_000)),
    seconds: Math.max(0.1, positive(values.seconds, 'seconds', 60)),
    only: values.only?.split(',').filter((s) => s !== ''),
    sessions: positive(values.sessions, 'sessions', 19_000),
    profile: values.profile === undefined ? undefined : path.resolve(values.profile),
    json: values.json,
  };
}

async function main(): Promise<void> {
  const opts = options();
  const hardStop = setTimeout(() => {
    console.error(`bench: still running after ${HARD_LIMIT_MS / 1000} s; stopping everything`);
    killAllNow();
    process.exit(3);
  }, HARD_LIMIT_MS).unref();
  const onSignal = (): void => {
    killAllNow();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', killAllNow);
  if (opts.profile !== undefined) mkdirSync(opts.profile, { recursive: true });

  const wanted = (id: string): boolean => opts.only === undefined || opts.only.some((s) => id.includes(s));
  const started = performance.now();
  const rev = revision();
  console.error(`bench: berth ${rev}, node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ${opts.calls} calls or ${opts.seconds} s per cell after ${WARMUP_CALLS} warm-up calls or ${WARMUP_MS / 1000} s`);
  const cells: Cell[] = [];
  const how = new Map<string, string>();
  const run = async (id: string, make: () => Promise<Target>): Promise<void> => {
    if (!wanted(id)) return;
    const target = await make();
    try {
      how.set(target.label, target.how);
      for (const conc of CONCURRENCIES) cells.push(await measure(target, conc, opts));
    } finally {
      await target.close();
    }
  };
  try {
    await run('direct-sdk', directSdk);
    await run('direct-raw', directRawTarget);
    await run('berth-stdio', () => berthStdio(opts.profile));
    await run('supergateway', supergateway);
    await run('mcp-proxy', mcpProxy);
    if (wanted('direct-http') || wanted('berth-http')) {
      const upstream = await startHttpUpstream();
      try {
        await run('direct-http', async () => directHttp(upstream));
        await run('berth-http', () => berthHttp(upstream, opts.profile));
        if (opts.profile === undefined) await run('floor-http', () => floorHttp(upstream));
      } finally {
        await stopProc(upstream.proc, 3_000);
      }
    }
    let memory: MemoryFigure | undefined;
    if (opts.sessions > 0 && opts.profile === undefined && (opts.only === undefined || opts.only.includes('memory'))) {
      console.error(`  memory: opening ${opts.sessions} idle sessions on berth's stdio route`);
      memory = await memoryPerSession(opts.sessions);
    }
    console.log('');
    console.log(report(cells, memory, how));
    console.log('');
    console.log(`berth ${rev}, node ${process.version}, ${cpus().length} CPUs; total ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (opts.json !== undefined) writeFileSync(opts.json, JSON.stringify({ revision: rev, node: process.version, cpus: cpus().length, cells, memory }, null, 2));
    if (opts.profile !== undefined) {
      console.log('');
      console.log(summarizeProfiles(opts.profile));
    }
  } finally {
    clearTimeout(hardStop);
    agent.destroy();
    for (const proc of [...procs]) await stopProc(proc, 3_000);
  }
}

if (process.argv[2] === '--berth-child') {
  await berthChild(process.argv[3] ?? '');
} else if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error(err);
    killAllNow();
    process.exitCode = 1;
  }
}
