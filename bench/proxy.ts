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
//   --runs N         runs of every cell, targets taken in turn (default 3);
//                    the verdicts are medians over the undisturbed runs
//   --concurrency L  concurrencies to measure (default 1,32)
//   --only a,b       run only targets whose id contains one of these
//                    (ids: direct-sdk, direct-raw, berth-stdio, supergateway,
//                    floor-stdio, mcp-proxy, direct-http, berth-http,
//                    floor-http, memory)
//   --sessions N     idle sessions for the memory figure (default 10000; 0 skips)
//   --profile DIR    run berth with --cpu-prof into DIR and print its hot spots
//   --json FILE      also write the figures as JSON

import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
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

const WARMUP_CALLS = 500;
const WARMUP_MS = 2_000;
const REQUEST_TIMEOUT_MS = 15_000;
const INIT_TIMEOUT_MS = 30_000;
const START_TIMEOUT_MS = 30_000;
const MEMORY_CONCURRENCY = 32;
const MEMORY_WARM_SESSIONS = 200;
const MEMORY_TIME_CAP_MS = 60_000;
/** Each run of every target stops by itself past this (the whole bench: this per run plus the memory figure). */
const HARD_LIMIT_MS = 300_000;

const GOALS = { httpAddedP50Ms: 0.3, httpThroughputPct: 90, httpCpuVsFloor: 1.5, stdioVsPeer: 1.5, stdioAddedP50Ms: 0.3, kbPerSession: 25 } as const;

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
  // A spawn that fails (e.g. the node binary replaced meanwhile) ends this process's part, not the bench.
  child.on('error', (err) => {
    proc.stderr.push(`spawn failed: ${err.message}`);
    proc.exited = true;
  });
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

async function startBerthProc(servers: string, profileDir?: string, listen = ''): Promise<BerthProc> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-'));
  const file = path.join(dir, 'berth.yaml');
  writeFileSync(file, `version: 1\nlisten: { host: ${HOST}, port: 0${listen} }\nservers:\n${servers}`);
  const flags = ['--expose-gc', ...(profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${profileDir}`])];
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

/** A proxy process in front of a stdio server, serving MCP at http://HOST:<port>/mcp; `start` gives its arguments and environment for a port. */
async function stdioProxyTarget(fields: { id: string; label: string; how: string }, start: (port: number) => { args: string[]; env?: Record<string, string> }): Promise<Target> {
  const port = await freePort();
  const { args, env } = start(port);
  const proc = startProc(fields.id, args, env === undefined ? {} : { env });
  const url = `http://${HOST}:${port}/mcp`;
  await waitForMcp(url, proc);
  return httpTarget({ ...fields, group: 'stdio', url, pids: proxyPids(proc), close: () => stopProc(proc) });
}

function supergateway(): Promise<Target> {
  return stdioProxyTarget(
    {
      id: 'supergateway',
      label: 'supergateway',
      how: '`--stdio "<node> <everything> stdio" --outputTransport streamableHttp --stateful --logLevel none` (stateful: one child per session; stateless would spawn a child per POST)',
    },
    (port) => ({ args: [SUPERGATEWAY, '--stdio', `${JSON.stringify(NODE)} ${JSON.stringify(EVERYTHING)} stdio`, '--outputTransport', 'streamableHttp', '--stateful', '--port', String(port), '--logLevel', 'none'] }),
  );
}

function mcpProxy(): Promise<Target> {
  return stdioProxyTarget(
    { id: 'mcp-proxy', label: 'mcp-proxy', how: '`--host 127.0.0.1 --port P --server stream --no-eventStore -- <node> <everything> stdio` (stateful sessions, one shared child)' },
    (port) => ({ args: [MCP_PROXY, '--host', HOST, '--port', String(port), '--server', 'stream', '--no-eventStore', '--', NODE, EVERYTHING, 'stdio'] }),
  );
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

/**
 * The least a Node proxy in front of a stdio server can do: node:http in, one
 * child's pipes out, ids rewritten so sessions cannot collide, one JSON body
 * back per request. No sessions kept, no checks, no metrics, no deadlines: a
 * reference for what the stdio route costs at least here, not a product.
 */
const FLOOR_STDIO = `
import http from 'node:http';
import { spawn } from 'node:child_process';
const child = spawn(process.execPath, [process.env.EVERYTHING, 'stdio'], { stdio: ['pipe', 'pipe', 'ignore'] });
const waiting = new Map();
let next = 1;
let buffer = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
  buffer += chunk;
  for (let nl = buffer.indexOf('\\n'); nl >= 0; nl = buffer.indexOf('\\n')) {
    const m = JSON.parse(buffer.slice(0, nl));
    buffer = buffer.slice(nl + 1);
    const w = waiting.get(m.id);
    if (w === undefined) continue;
    waiting.delete(m.id);
    m.id = w.id;
    const body = JSON.stringify(m);
    w.res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'mcp-session-id': w.session }).end(body);
  }
});
let sessions = 0;
http.createServer((req, res) => {
  if (req.method !== 'POST') return void res.writeHead(200).end();
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const m = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (m.id === undefined) {
      child.stdin.write(JSON.stringify(m) + '\\n');
      res.writeHead(202).end();
      return;
    }
    const id = next++;
    waiting.set(id, { id: m.id, res, session: req.headers['mcp-session-id'] ?? String(++sessions) });
    m.id = id;
    child.stdin.write(JSON.stringify(m) + '\\n');
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

function floorStdio(): Promise<Target> {
  return stdioProxyTarget(
    {
      id: 'floor-stdio',
      label: 'bare node:http → stdio (reference)',
      how: 'a 40-line `node:http` server writing each request to one child\'s stdin with its id rewritten and answering with the line that comes back: what any Node proxy of the stdio route costs at least, for scale',
    },
    (port) => ({ args: ['--input-type=module', '-e', FLOOR_STDIO], env: { EVERYTHING, PORT: String(port) } }),
  );
}

// ---------------------------------------------------------------- measuring

interface Cell {
  /** Which run of the bench (1-based). */
  readonly round: number;
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

async function measure(target: Target, concurrency: number, opts: Options, round: number): Promise<Cell> {
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
    round,
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
  console.error(`  ${target.id.padEnd(13)} c=${String(concurrency).padEnd(3)} run ${round}${disturbed(cell) ? ' DISTURBED' : ''} p50 ${cell.p50.toFixed(3)} ms  p99 ${cell.p99.toFixed(3)} ms  ${cell.throughput.toFixed(0)} calls/s  CPU µs/call ${cell.cpu.proxy === undefined ? '' : `proxy ${cell.cpu.proxy.toFixed(0)} `}server ${cell.cpu.upstream.toFixed(0)} client ${cell.cpu.client.toFixed(0)}, other load ${cell.otherCpuPct.toFixed(0)} %  (${cell.calls} calls in ${cell.seconds.toFixed(1)} s${cell.errors > 0 ? `, ${cell.errors} errors: ${cell.firstError}` : ''})`);
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
  // Every session comes from one anonymous client here: lift its cap (1,000 by default), or berth evicts all but the last 1,000.
  const berth = await startBerthProc(everythingStdioYaml('everything'), undefined, `, maxSessionsPerClient: ${2 * (n + MEMORY_WARM_SESSIONS)}, maxSessions: ${2 * (n + MEMORY_WARM_SESSIONS)}`);
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

/** The stage of the request path each berth module (or method, `file#method`) belongs to; see bench/RESULTS.md. */
const STAGE_OF: Readonly<Record<string, string>> = {
  'src/http/json-io.ts#readJsonBody': 'HTTP parse',
  'src/proxy/server.ts': 'routing',
  'src/proxy/downstream/mcp-endpoint.ts': 'routing',
  'src/proxy/downstream/stateless.ts': 'routing',
  'src/proxy/downstream/sessions.ts': 'routing',
  'src/http/guard.ts': 'routing',
  'src/http/json-io.ts': 'routing',
  'src/auth': 'routing',
  'src/proxy/downstream/session-transport.ts#handlePost': 'routing',
  'src/proxy/downstream/session-transport.ts#checkMessages': 'routing',
  'src/proxy/downstream/session-transport.ts#isMessage': 'routing',
  'src/proxy/downstream/session-transport.ts#isInitialize': 'routing',
  'src/proxy/downstream/session-transport.ts': 'response',
  'src/proxy/mux/multiplex.ts': 'id rewrite',
  'src/proxy/mux/request-table.ts': 'id rewrite',
  'src/http/jsonrpc.ts': 'id rewrite',
  'src/proxy/mux/upstream-link.ts': 'id rewrite',
  'src/proxy/mux/earliest-timer.ts': 'id rewrite',
  'src/backends/local/child.ts#send': 'stdio write',
  'src/backends/local': 'stdio read',
  'src/observe': 'metrics and logging',
};
/** Node functions that run with no berth frame above them. */
const RUNTIME_STAGE: Readonly<Record<string, string>> = {
  parserOnHeadersComplete: 'HTTP parse',
  parserOnIncoming: 'HTTP parse',
  parserOnMessageComplete: 'HTTP parse',
  parserOnBody: 'HTTP parse',
  execute: 'HTTP parse',
  connectionCorkNT: 'response',
  resOnFinish: 'response',
  onFinish: 'response',
  '(garbage collector)': 'GC',
};

/** Method start lines of a source file, for telling which method a profiled line belongs to. */
const methodLines = new Map<string, { line: number; name: string }[]>();
function methodAt(file: string, line: number): string | undefined {
  let methods = methodLines.get(file);
  if (methods === undefined) {
    methods = [];
    try {
      readFileSync(path.join(ROOT, file), 'utf8').split('\n').forEach((text, i) => {
        const m = /^(?: {2}(?:async )?#?|(?:export )?(?:async )?function )(\w+)\(/.exec(text);
        if (m?.[1] !== undefined) methods?.push({ line: i + 1, name: m[1] });
      });
    } catch {
      // not a source file of this tree
    }
    methodLines.set(file, methods);
  }
  return methods.filter((m) => m.line <= line).at(-1)?.name;
}

/** The stage a sample belongs to: the nearest berth frame's module or method, else a package, else the runtime function. */
function stageOf(leaf: number, byId: Map<number, ProfileNode>, parent: Map<number, number>): string {
  let top = '';
  for (let cur: number | undefined = leaf; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    if (n === undefined) break;
    const url = n.callFrame.url;
    if (cur === leaf) top = n.callFrame.functionName;
    if (url.includes('/node_modules/')) {
      const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? '?';
      if (pkg === 'pino' || pkg === 'prom-client') return 'metrics and logging';
      if (pkg === '@modelcontextprotocol/sdk') return 'SDK session transport';
      continue;
    }
    const at = url.indexOf('/src/');
    if (at < 0) {
      const stage = RUNTIME_STAGE[n.callFrame.functionName];
      if (stage !== undefined) return stage;
      continue;
    }
    const file = url.slice(at + 1);
    const method = methodAt(file, n.callFrame.lineNumber + 1);
    for (const key of [`${file}#${method ?? ''}`, file, file.slice(0, file.lastIndexOf('/'))]) {
      const stage = STAGE_OF[key];
      if (stage !== undefined) return stage;
    }
    return `other berth (${file})`;
  }
  return top === '(garbage collector)' ? 'GC' : top === '(program)' ? 'runtime (program)' : 'runtime I/O and timers';
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
    const stages = new Map<string, number>();
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
        const stage = stageOf(id, byId, parent);
        stages.set(stage, (stages.get(stage) ?? 0) + dt);
      }
    });
    const busy = total - idle;
    const pct = (v: number): string => `${((100 * v) / busy).toFixed(1).padStart(5)} %`;
    lines.push(`profile ${name}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy`);
    lines.push('  by stage (self time charged to the nearest berth frame, else by the runtime function; share of busy):');
    for (const [k, v] of [...stages].sort((a, b) => b[1] - a[1])) lines.push(`    ${pct(v)}  ${k}`);
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
  readonly runs: number;
  readonly concurrencies: readonly number[];
  readonly only: string[] | undefined;
  readonly sessions: number;
  readonly profile: string | undefined;
  readonly json: string | undefined;
}

const fmt = (n: number, digits = 3): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
/** A goal over per-run figures: with no undisturbed run there is nothing to judge. */
const judged = (f: RoundFigure, ok: (n: number) => boolean): string => (f.values.length === 0 ? 'not measured' : verdict(ok(f.median)));

/** Other load above this share of a core (or steal above STEAL_PCT) disturbs a cell: it is left out of the figures. */
const NOISE_PCT = 15;
const STEAL_PCT = 5;
const disturbed = (c: Cell): boolean => c.otherCpuPct > NOISE_PCT || c.stealPct > STEAL_PCT;

function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** One figure per round where every cell it needs is clean; the median, the values, and how many rounds were left out. */
interface RoundFigure {
  readonly median: number;
  readonly values: number[];
  readonly leftOut: number;
}

function perRound(cells: readonly Cell[], rounds: number, figure: (cell: (id: string, conc: number) => Cell | undefined) => { value: number; cells: Cell[] } | undefined): RoundFigure {
  const values: number[] = [];
  let leftOut = 0;
  for (let r = 1; r <= rounds; r++) {
    const f = figure((id, conc) => cells.find((c) => c.round === r && c.target === id && c.concurrency === conc));
    if (f === undefined) continue;
    if (f.cells.some(disturbed)) leftOut++;
    else values.push(f.value);
  }
  return { median: median(values), values, leftOut };
}

function describe(f: RoundFigure, show: (n: number) => string): string {
  if (f.values.length === 0) return `no clean round${f.leftOut > 0 ? ` (${f.leftOut} disturbed, left out)` : ''}`;
  return `median ${show(f.median)} (runs: ${f.values.map(show).join(', ')}${f.leftOut > 0 ? `; ${f.leftOut} disturbed round(s) left out` : ''})`;
}

function report(cells: Cell[], rounds: number, concurrencies: readonly number[], memory: MemoryFigure | undefined, targets: Map<string, string>): string {
  const out: string[] = [];
  const row = (cols: string[]): string => `| ${cols.join(' | ')} |`;
  out.push(`Medians over the clean runs of each cell (other load ≤ ${NOISE_PCT} % of a core); calls/s with the spread over those runs.`);
  out.push('');
  out.push(row(['upstream', 'target', 'conc', 'p50 ms', 'p99 ms', 'calls/s (min–max)', 'proxy CPU µs/call', 'server CPU µs/call', 'client CPU µs/call', 'clean runs', 'errors']));
  out.push(row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']));
  const keys = [...new Map(cells.map((c) => [`${c.target}\n${c.concurrency}`, c])).values()];
  for (const k of keys) {
    const all = cells.filter((c) => c.target === k.target && c.concurrency === k.concurrency);
    const clean = all.filter((c) => !disturbed(c));
    const use = clean.length > 0 ? clean : all;
    const m = (f: (c: Cell) => number): number => median(use.map(f));
    const tput = use.map((c) => c.throughput);
    const proxy = use.every((c) => c.cpu.proxy !== undefined) ? m((c) => c.cpu.proxy as number).toFixed(0) : '–';
    out.push(row([k.group, k.label, String(k.concurrency), fmt(m((c) => c.p50)), fmt(m((c) => c.p99)), `${median(tput).toFixed(0)} (${Math.min(...tput).toFixed(0)}–${Math.max(...tput).toFixed(0)})`, proxy, m((c) => c.cpu.upstream).toFixed(0), m((c) => c.cpu.client).toFixed(0), `${clean.length}/${all.length}${clean.length === 0 ? ' (all disturbed: medians of all)' : ''}`, String(all.reduce((n, c) => n + c.errors, 0))]));
  }
  out.push('');
  const noisy = cells.filter(disturbed);
  if (noisy.length > 0) {
    out.push(`- left out as disturbed: ${noisy.map((c) => `${c.target} c=${c.concurrency} run ${c.round} (${c.otherCpuPct.toFixed(0)} % of a core${c.stealPct > STEAL_PCT ? `, ${c.stealPct.toFixed(0)} % stolen` : ''})`).join(', ')}`);
  }
  const x = (n: number): string => `${n.toFixed(2)}×`;
  const ms = (n: number): string => `+${fmt(n)} ms`;
  const pct = (n: number): string => `${n.toFixed(0)} %`;
  for (const conc of concurrencies) {
    const vsPeer = perRound(cells, rounds, (cell) => {
      const berth = cell('berth-stdio', conc);
      const best = ['supergateway', 'mcp-proxy'].map((id) => cell(id, conc)).filter((c): c is Cell => c !== undefined && c.errors === 0).sort((a, b) => b.throughput - a.throughput)[0];
      return berth === undefined || best === undefined ? undefined : { value: berth.errors === 0 ? berth.throughput / best.throughput : 0, cells: [berth, best] };
    });
    if (vsPeer.values.length + vsPeer.leftOut > 0) out.push(`- stdio c=${conc}: berth vs the best peer of each run, throughput: ${describe(vsPeer, x)} — goal ≥ ${GOALS.stdioVsPeer}×: ${judged(vsPeer, (n) => n >= GOALS.stdioVsPeer)}`);
    const vsSdk = perRound(cells, rounds, (cell) => {
      const berth = cell('berth-stdio', conc);
      const direct = cell('direct-sdk', conc);
      return berth === undefined || direct === undefined ? undefined : { value: berth.p50 - direct.p50, cells: [berth, direct] };
    });
    if (vsSdk.values.length + vsSdk.leftOut > 0) out.push(`- stdio c=${conc}: berth's p50 added over the direct SDK client: ${describe(vsSdk, ms)}${conc === 1 ? ` — goal ≤ ${GOALS.stdioAddedP50Ms} ms: ${judged(vsSdk, (n) => n <= GOALS.stdioAddedP50Ms)}` : ''}`);
    // The floor: what a proxy with no logic at all adds and costs, in the same run.
    const floorAdded = perRound(cells, rounds, (cell) => {
      const floor = cell('floor-stdio', conc);
      const direct = cell('direct-sdk', conc);
      return floor === undefined || direct === undefined ? undefined : { value: floor.p50 - direct.p50, cells: [floor, direct] };
    });
    if (floorAdded.values.length + floorAdded.leftOut > 0) out.push(`  the bare node:http → stdio pipe's p50 added over the direct SDK client: ${describe(floorAdded, ms)}`);
    const floorCpu = perRound(cells, rounds, (cell) => {
      const berth = cell('berth-stdio', conc);
      const floor = cell('floor-stdio', conc);
      return berth?.cpu.proxy === undefined || floor?.cpu.proxy === undefined ? undefined : { value: berth.cpu.proxy / floor.cpu.proxy, cells: [berth, floor] };
    });
    if (floorCpu.values.length + floorCpu.leftOut > 0) out.push(`  berth's proxy CPU per call vs the bare node:http → stdio pipe: ${describe(floorCpu, x)}`);
  }
  for (const conc of concurrencies) {
    const added = perRound(cells, rounds, (cell) => {
      const berth = cell('berth-http', conc);
      const direct = cell('direct-http', conc);
      return berth === undefined || direct === undefined ? undefined : { value: berth.p50 - direct.p50, cells: [berth, direct] };
    });
    const share = perRound(cells, rounds, (cell) => {
      const berth = cell('berth-http', conc);
      const direct = cell('direct-http', conc);
      return berth === undefined || direct === undefined ? undefined : { value: (100 * berth.throughput) / direct.throughput, cells: [berth, direct] };
    });
    if (added.values.length + added.leftOut === 0) continue;
    out.push(`- HTTP c=${conc}: berth vs direct: p50 ${describe(added, ms)} (goal ≤ ${GOALS.httpAddedP50Ms} ms: ${judged(added, (n) => n <= GOALS.httpAddedP50Ms)}); throughput ${describe(share, pct)} (goal ≥ ${GOALS.httpThroughputPct} %: ${judged(share, (n) => n >= GOALS.httpThroughputPct)})`);
    const cpu = perRound(cells, rounds, (cell) => {
      const berth = cell('berth-http', conc);
      const floor = cell('floor-http', conc);
      return berth?.cpu.proxy === undefined || floor?.cpu.proxy === undefined ? undefined : { value: berth.cpu.proxy / floor.cpu.proxy, cells: [berth, floor] };
    });
    if (cpu.values.length + cpu.leftOut > 0) out.push(`  proxy CPU per call vs the bare node:http proxy: ${describe(cpu, x)}${conc === 32 ? ` — goal ≤ ${GOALS.httpCpuVsFloor}×: ${judged(cpu, (n) => n <= GOALS.httpCpuVsFloor)}` : ''}`);
  }
  if (memory !== undefined) {
    out.push(
      `- memory: ${memory.sessions.toLocaleString('en-US')} idle sessions on berth's stdio route (opened in ${memory.seconds.toFixed(1)} s; berth holds ${memory.berthSessions}): ` +
        `${memory.rssKb.toFixed(1)} KB RSS, ${memory.heapKb.toFixed(1)} KB heap, ${memory.externalKb.toFixed(2)} KB external per session — goal < ${GOALS.kbPerSession} KB: ${verdict(Math.max(memory.rssKb, memory.heapKb + memory.externalKb) < GOALS.kbPerSession)}`,
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
      runs: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '1,32' },
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
    runs: Math.max(1, Math.round(positive(values.runs, 'runs', 9))),
    concurrencies: values.concurrency.split(',').map((c) => Math.max(1, Math.round(positive(c, 'concurrency', 256)))),
    only: values.only?.split(',').filter((s) => s !== ''),
    sessions: positive(values.sessions, 'sessions', 19_000),
    profile: values.profile === undefined ? undefined : path.resolve(values.profile),
    json: values.json,
  };
}

async function main(): Promise<void> {
  const opts = options();
  const hardLimitMs = HARD_LIMIT_MS * opts.runs + MEMORY_TIME_CAP_MS * 2;
  const hardStop = setTimeout(() => {
    console.error(`bench: still running after ${hardLimitMs / 1000} s; stopping everything`);
    killAllNow();
    process.exit(3);
  }, hardLimitMs).unref();
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
  const machine = `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
  console.error(`bench: berth ${rev}, node ${process.version}, ${machine}; ${opts.runs} run(s) of ${opts.calls} calls or ${opts.seconds} s per cell after ${WARMUP_CALLS} warm-up calls or ${WARMUP_MS / 1000} s; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const cells: Cell[] = [];
  const how = new Map<string, string>();
  const run = async (round: number, id: string, make: () => Promise<Target>): Promise<void> => {
    if (!wanted(id)) return;
    const target = await make();
    try {
      how.set(target.label, target.how);
      for (const conc of opts.concurrencies) cells.push(await measure(target, conc, opts, round));
    } finally {
      await target.close();
    }
  };
  try {
    // Rounds run every target in turn, so a burst of other load lands in one run of a cell, not in all of them.
    for (let round = 1; round <= opts.runs; round++) {
      console.error(`  run ${round} of ${opts.runs} (load average ${loadavg()[0]?.toFixed(1) ?? '?'})`);
      await run(round, 'direct-sdk', directSdk);
      await run(round, 'direct-raw', directRawTarget);
      await run(round, 'berth-stdio', () => berthStdio(opts.profile));
      if (opts.profile === undefined) await run(round, 'floor-stdio', floorStdio);
      await run(round, 'supergateway', supergateway);
      await run(round, 'mcp-proxy', mcpProxy);
      if (wanted('direct-http') || wanted('berth-http')) {
        const upstream = await startHttpUpstream();
        try {
          await run(round, 'direct-http', async () => directHttp(upstream));
          await run(round, 'berth-http', () => berthHttp(upstream, opts.profile));
          if (opts.profile === undefined) await run(round, 'floor-http', () => floorHttp(upstream));
        } finally {
          await stopProc(upstream.proc, 3_000);
        }
      }
    }
    let memory: MemoryFigure | undefined;
    if (opts.sessions > 0 && opts.profile === undefined && (opts.only === undefined || opts.only.includes('memory'))) {
      console.error(`  memory: opening ${opts.sessions} idle sessions on berth's stdio route`);
      memory = await memoryPerSession(opts.sessions);
    }
    console.log('');
    console.log(report(cells, opts.runs, opts.concurrencies, memory, how));
    console.log('');
    console.log(`berth ${rev}, node ${process.version}, ${machine}; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}; total ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (opts.json !== undefined) writeFileSync(opts.json, JSON.stringify({ revision: rev, node: process.version, machine, cells, memory }, null, 2));
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
