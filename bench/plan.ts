// How long config → desired state → plan takes as configs grow: resolve +
// plan from nothing and against a previous state with ~5% of servers changed,
// for 100, 1,000 and 10,000 servers; then parsing (YAML, schema, semantics) of
// the largest file on its own. Run: npm run bench:plan
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import type { LoadedConfig } from '../src/config/load.ts';
import { parseConfig } from '../src/config/load.ts';
import type { BerthConfiguration, Server } from '../src/config/types.gen.ts';
import { resolveDesiredState } from '../src/desired/resolve.ts';
import type { ObservedState } from '../src/reconcile/plan.ts';
import { hasChanges, planChanges } from '../src/reconcile/plan.ts';

const SIZES = [100, 1_000, 10_000] as const;
const GOAL_SERVERS = 10_000;
const GOAL_MS = 200;
const WARMUP = 3;
const RUNS = 9;

/** A small deterministic PRNG (mulberry32), so every run benches the same configs. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A config shaped like a big real one: mostly npm/PyPI servers, some per-user
 * commands and containers with credentials, remotes with headers and OAuth,
 * and composites of earlier servers.
 */
export function buildConfig(size: number, seed = 1): BerthConfiguration {
  const rnd = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const servers: Record<string, Server> = {};
  const leaves: string[] = [];
  for (let i = 0; i < size; i++) {
    const name = `srv-${String(i).padStart(5, '0')}`;
    const roll = rnd();
    let server: Server;
    if (roll < 0.35) {
      server = { type: 'multi-user', runtime: 'npx', package: pick(['@acme/mcp-files', '@acme/mcp-git', 'mcp-server-weather']), version: `1.${i % 7}.0`, args: ['stdio'], replicas: 1 + (i % 3), env: { LOG_LEVEL: 'info', API_TOKEN: `token-${i}` } };
    } else if (roll < 0.5) {
      server = { type: 'multi-user', runtime: 'uvx', package: pick(['mcp-server-fetch', 'mcp-server-time', 'mcp-server-sqlite']), args: ['--db', `/data/${name}.db`], resources: { cpu: '250m', memory: '128Mi' } };
    } else if (roll < 0.62) {
      server = { type: 'single-user', runtime: 'command', command: '/usr/local/bin/mcp-tool', args: ['--stdio', `--profile=${name}`], env: { TOKEN: { fromUser: true, sensitive: true, description: 'Personal token' }, MODE: 'fast' }, idleTimeout: pick(['5m', '15m', '1h']) };
    } else if (roll < 0.74) {
      server = {
        type: pick(['single-user', 'multi-user'] as const),
        runtime: 'container',
        image: `ghcr.io/acme/${name}:v${i % 5}`,
        port: 8080,
        headers: { 'X-Tenant': `t-${i % 10}` },
        resources: { cpu: '500m', memory: '256Mi' },
        access: { groups: ['eng'] },
      };
      if (server.type === 'multi-user') server.replicas = 2;
    } else if (roll < 0.88) {
      server = { type: 'remote', url: `https://mcp-${i}.example.com/mcp`, headers: { 'X-Api-Key': { value: `key-${i}`, sensitive: true } }, oauth: { scopes: ['read'] }, access: { users: ['alice'], groups: ['ops'] } };
    } else if (leaves.length >= 3) {
      const parts = [...new Set([pick(leaves), pick(leaves), pick(leaves)])];
      server = {
        type: 'composite',
        description: `composite ${i}`,
        components: parts.map((part, k) => ({ server: part, prefix: `c${k}_`, tools: { include: ['search', 'fetch'], rename: { fetch: 'get' } } })),
      };
    } else {
      server = { type: 'multi-user', runtime: 'npx', package: '@acme/mcp-files' };
    }
    servers[name] = server;
    if (server.type !== 'composite') leaves.push(name);
  }
  return { version: 1, backend: { type: 'docker' }, auth: [{ type: 'jwt', issuer: 'https://idp.example.com', audience: 'https://mcp.example.com' }], servers };
}

/**
 * The same config with about 5% of servers changed: new versions (replace),
 * replicas (scale), headers and access (route only), some removed, some added.
 */
export function changeConfig(config: BerthConfiguration, seed = 2): BerthConfiguration {
  const rnd = random(seed);
  const servers: Record<string, Server> = {};
  const referenced = new Set(Object.values(config.servers).flatMap((s) => (s?.components ?? []).map((c) => c.server)));
  for (const [name, server] of Object.entries(config.servers)) {
    if (server === undefined) continue;
    if (rnd() >= 0.05) {
      servers[name] = server;
      continue;
    }
    const kind = rnd();
    if (kind < 0.15 && !referenced.has(name)) continue; // removed
    if (server.runtime === 'npx') servers[name] = kind < 0.6 ? { ...server, version: '2.0.0' } : { ...server, replicas: (server.replicas ?? 1) + 1 };
    else if (server.type === 'remote' || server.runtime === 'container') servers[name] = { ...server, headers: { ...server.headers, 'X-Trace': 'on' } };
    else servers[name] = { ...server, access: { groups: ['eng', 'ops'] } };
    if (kind > 0.9) servers[`${name}-new`] = { type: 'multi-user', runtime: 'npx', package: '@acme/mcp-new' };
  }
  return { ...config, servers };
}

function loaded(config: BerthConfiguration): LoadedConfig {
  return { file: 'bench.yaml', config };
}

/** Median milliseconds of `fn` after warm-up runs. */
export function time(fn: () => unknown, runs = RUNS, warmup = WARMUP): number {
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] ?? Number.NaN;
}

const ms = (n: number): string => n.toFixed(1).padStart(9);
const perServer = (n: number, size: number): string => ((n * 1000) / size).toFixed(1).padStart(10);

function main(): void {
  let mix = '';
  const rows: { size: number; fresh: number; changed: number }[] = [];
  for (const size of SIZES) {
    const previous = buildConfig(size);
    const next = changeConfig(previous);
    const observed: ObservedState = resolveDesiredState(loaded(previous));
    const empty: ObservedState = { units: [], routes: [] };
    // Sanity: the benchmark must plan real work, or the numbers mean nothing.
    const plan = planChanges(resolveDesiredState(loaded(next)), observed);
    if (!hasChanges(plan)) throw new Error('the changed config plans no changes');
    const counts = new Map<string, number>();
    for (const a of plan.actions) counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
    counts.set('route changes', plan.routes.length);
    mix = [...counts].map(([kind, n]) => `${n} ${kind}`).join(', ');
    const fresh = time(() => planChanges(resolveDesiredState(loaded(previous)), empty));
    const changed = time(() => planChanges(resolveDesiredState(loaded(next)), observed));
    rows.push({ size, fresh, changed });
  }

  const text = stringify(buildConfig(GOAL_SERVERS));
  const ctx = { env: {}, readFile: () => '', baseDir: process.cwd() };
  if (!parseConfig('bench.yaml', text, ctx).ok) throw new Error('the generated config does not validate');
  const parse = time(() => parseConfig('bench.yaml', text, ctx), 3, 1);

  console.log('resolveDesiredState + planChanges (median of %d runs after %d warm-up runs)', RUNS, WARMUP);
  console.log('');
  console.log('  servers   from nothing          5% changed');
  console.log('                  ms  µs/server         ms  µs/server');
  for (const r of rows) console.log(`  ${r.size.toLocaleString('en-US').padStart(7)} ${ms(r.fresh)} ${perServer(r.fresh, r.size)} ${ms(r.changed)} ${perServer(r.changed, r.size)}`);
  const at = (size: number) => rows.find((r) => r.size === size);
  const big = at(10_000);
  const mid = at(1_000);
  if (big !== undefined && mid !== undefined) {
    console.log('');
    console.log(`  5% changed at 10,000 servers plans: ${mix}`);
    console.log(`  growth 10k/1k: ${(big.fresh / mid.fresh).toFixed(1)}× from nothing, ${(big.changed / mid.changed).toFixed(1)}× changed (linear = 10×)`);
  }
  console.log('');
  console.log(`parseConfig (YAML + schema + semantics), ${GOAL_SERVERS.toLocaleString('en-US')} servers, ${(text.length / 1e6).toFixed(1)} MB: ${parse.toFixed(0)} ms (median of 3)`);
  console.log('');
  const worst = big === undefined ? Number.NaN : Math.max(big.fresh, big.changed);
  console.log(`goal: 10,000 servers < 200 ms  →  ${worst.toFixed(1)} ms, ${worst < GOAL_MS ? 'met' : 'MISSED'}`);
}

if (import.meta.main) main();
