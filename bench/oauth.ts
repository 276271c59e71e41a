// The upstream OAuth benchmark (issue 19). One berth (in this process) in
// front of an SDK MCP server that takes only JWTs for its own URL, with an
// oidc-provider issuer, all on 127.0.0.1. Three figures:
// 1. Added cost of an authorized call: the same tools/call through a remote
//    whose token berth obtained for the user (`oauth`) and through a remote
//    with the same kind of token as a static header (`static`), in
//    interleaved rounds; p50 latency and process CPU per call (this process
//    runs berth, the upstream and the client alike, so only the difference
//    between the two modes is berth's).
// 2. Refresh under load: N concurrent calls on an expired token: refresh
//    grants made (goal 1) and calls failed (goal 0).
// 3. Memory per stored token: state-file bytes and heap bytes per token set
//    held in berth's cache, for 1,000 users.
// Run: node --expose-gc bench/oauth.ts [--calls N] [--concurrent N]. Loops are
// bounded in count and time; everything started here is stopped.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { Authorizer } from '../src/oauth/authorizer.ts';
import { OAuthStore } from '../src/oauth/token-store.ts';
import type { TokenSet } from '../src/oauth/token-store.ts';
import { silentLogger } from '../src/observe/log.ts';
import { StateStore } from '../src/store/state.ts';
import { startTestBerth } from '../test/helpers/berth.ts';
import { authorize } from '../test/helpers/oauth-flow.ts';
import { startIssuer } from '../test/helpers/oidc.ts';
import { startProtectedServer } from '../test/helpers/protected-server.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '2000' }, concurrent: { type: 'string', default: '100' }, seconds: { type: 'string', default: '60' } } });
const CALLS = Number(values.calls);
const CONCURRENT = Number(values.concurrent);
const CAP_MS = Number(values.seconds) * 1000;
const ROUND = 100;
const WARMUP = 200;
const USERS = 1000;
setTimeout(() => {
  process.stderr.write('bench/oauth: hard time limit reached\n');
  process.exit(1);
}, CAP_MS * 3).unref();

const KEY = 'berth_bench-oauth-0123456789abcdef';
const HEADERS = { 'x-api-key': KEY };
const STATE_KEY = '0123456789abcdef0123456789abcdef-bench';
const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-oauth-'));
const head = (file: string): string => `state: { path: ${JSON.stringify(path.join(dir, file))}, key: "${STATE_KEY}" }\nauth:\n  - type: apiKey\n    keys: [{ user: bench, key: "${KEY}" }]\n`;

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

/** One JSON-RPC POST on a kept-alive connection; the answer's status and body. */
function post(agent: http.Agent, url: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...HEADERS, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const CALL = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } };
const ok = (answer: { status: number; body: string }): boolean => answer.status === 200 && answer.body.includes('sub=');

async function addedCost(): Promise<void> {
  const issuer = await startIssuer({ interactive: true, refresh: true });
  const upstream = await startProtectedServer(issuer.issuer);
  const token = await issuer.token(upstream.url, 'mcp:read');
  const b = await startTestBerth(
    `  static:\n    type: remote\n    url: ${upstream.url}\n    headers: { Authorization: "Bearer ${token}" }\n  oauth:\n    type: remote\n    url: ${upstream.url}\n    oauth: { allowPrivateNetworks: true }\n`,
    head('cost.json'),
  );
  try {
    if ((await authorize(b.url, 'oauth', HEADERS, 'bench')).status !== 303) throw new Error('authorization failed');
    const modes = ['static', 'oauth'] as const;
    const agents = { static: new http.Agent({ keepAlive: true, maxSockets: 1 }), oauth: new http.Agent({ keepAlive: true, maxSockets: 1 }) };
    const call = async (mode: (typeof modes)[number]): Promise<void> => {
      const answer = await post(agents[mode], `${b.url}/mcp/${mode}`, CALL);
      if (!ok(answer)) throw new Error(`${mode}: ${answer.status} ${answer.body.slice(0, 200)}`);
    };
    for (let i = 0; i < WARMUP; i++) for (const mode of modes) await call(mode);
    const latencies = { static: [] as number[], oauth: [] as number[] };
    const cpu = { static: 0, oauth: 0 };
    const started = performance.now();
    while (latencies.oauth.length < CALLS && performance.now() - started < CAP_MS) {
      for (const mode of modes) {
        const before = process.cpuUsage();
        for (let i = 0; i < ROUND; i++) {
          const t0 = performance.now();
          await call(mode);
          latencies[mode].push(performance.now() - t0);
        }
        const used = process.cpuUsage(before);
        cpu[mode] += used.user + used.system;
      }
    }
    console.log('1. added cost of an authorized call (same upstream, same kind of token)');
    console.log('mode     calls   p50 ms  p99 ms  process CPU µs/call');
    for (const mode of modes) {
      const xs = latencies[mode];
      console.log(`${mode.padEnd(8)} ${String(xs.length).padStart(5)} ${pct(xs, 50).toFixed(3).padStart(8)} ${pct(xs, 99).toFixed(3).padStart(7)} ${(cpu[mode] / xs.length).toFixed(0).padStart(20)}`);
    }
    console.log(`added by berth's OAuth: p50 ${(pct(latencies.oauth, 50) - pct(latencies.static, 50)).toFixed(3)} ms, CPU ${((cpu.oauth / latencies.oauth.length) - (cpu.static / latencies.static.length)).toFixed(0)} µs/call`);
    for (const agent of Object.values(agents)) agent.destroy();
  } finally {
    await b.stop();
    await upstream.stop();
    await issuer.stop();
  }
}

async function refreshUnderLoad(): Promise<void> {
  const issuer = await startIssuer({ interactive: true, refresh: true, accessTokenTtl: 2 });
  const upstream = await startProtectedServer(issuer.issuer);
  const b = await startTestBerth(`  notes:\n    type: remote\n    url: ${upstream.url}\n    oauth: { allowPrivateNetworks: true }\n`, head('refresh.json'));
  try {
    if ((await authorize(b.url, 'notes', HEADERS, 'bench')).status !== 303) throw new Error('authorization failed');
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENT });
    // Bounded wait for the token to expire (2 s lifetime): then every call below needs the refresh.
    const state = await StateStore.open({ path: path.join(dir, 'refresh.json'), keys: [STATE_KEY] });
    const set = (await new OAuthStore(state, silentLogger()).token('apiKey:bench', 'notes')) as TokenSet;
    const due = Math.max((decodeJwt(set.accessToken).exp ?? 0) * 1000, set.refreshAt ?? 0) + 100;
    while (Date.now() < due) await new Promise((resolve) => setTimeout(resolve, 50));
    const grants = issuer.hits.get('/token') ?? 0;
    const answers = await Promise.all(Array.from({ length: CONCURRENT }, () => post(agent, `${b.url}/mcp/notes`, CALL).catch(() => ({ status: 0, body: '' }))));
    const failures = answers.filter((a) => !ok(a));
    const failed = failures.length;
    for (const f of failures.slice(0, 3)) process.stderr.write(`bench/oauth: a call failed: ${f.status} ${f.body.slice(0, 300)}\n`);
    console.log(`\n2. refresh under ${CONCURRENT} concurrent calls on an expired token: refresh grants made ${(issuer.hits.get('/token') ?? 0) - grants} (goal 1), calls failed ${failed} (goal 0)`);
    agent.destroy();
  } finally {
    await b.stop();
    await upstream.stop();
    await issuer.stop();
  }
}

async function memoryPerToken(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const file = path.join(dir, 'memory.json');
  const state = await StateStore.open({ path: file, keys: [STATE_KEY] });
  const store = new OAuthStore(state, silentLogger());
  const payload = Buffer.alloc(600, 'a').toString(); // about a JWT access token's length
  const target = { server: 'notes', url: 'https://notes.example/mcp', oauth: { scopes: [], perUser: true, allowPrivateNetworks: false } };
  for (let i = 0; i < USERS; i++) {
    await store.saveToken(`apiKey:user-${i}`, 'notes', {
      accessToken: `${payload}${i}`,
      refreshToken: `refresh-${'r'.repeat(40)}-${i}`,
      expiresAt: Date.now() + 3_600_000,
      refreshAt: Date.now() + 3_540_000,
      scope: 'mcp:read',
      issuer: 'https://auth.example',
      resource: target.url,
      tokenEndpoint: 'https://auth.example/token',
      client: { clientId: 'client-0123456789', authMethod: 'none' },
    });
  }
  // The cache's share of the heap: with the authorizer holding every user's token set, then without it.
  const heapAfterGc = (): number => {
    gc?.();
    gc?.();
    return process.memoryUsage().heapUsed;
  };
  const holder: { authorizer?: Authorizer } = { authorizer: new Authorizer({ store, logger: silentLogger() }) };
  let served = 0;
  for (let i = 0; i < USERS; i++) if ((await holder.authorizer?.tokenFor(`apiKey:user-${i}`, target)) !== undefined) served++;
  if (served !== USERS) throw new Error('tokens not served');
  const holding = heapAfterGc();
  if ((await holder.authorizer?.status('apiKey:user-0', target))?.connected !== true) throw new Error('token not cached');
  delete holder.authorizer;
  const heap = (holding - heapAfterGc()) / USERS;
  console.log(`\n3. memory per stored token (${USERS} users, ~600-byte access tokens): state file ${(statSync(file).size / USERS).toFixed(0)} bytes/token; heap ${gc === undefined ? '(run with --expose-gc)' : `${heap.toFixed(0)} bytes/token`} held in berth's decrypted cache`);
}

try {
  await addedCost();
  await refreshUnderLoad();
  await memoryPerToken();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
