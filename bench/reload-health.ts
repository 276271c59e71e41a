// Does berth keep answering while it reloads a large config? Serves 10,000
// remote routes (nothing to start), rewrites the file with one route changed,
// and polls /healthz every 10 ms until the reload is applied, bounded to 60 s.
// Prints the reload time and /healthz latency (p50, p99, max) during it.
// Run: node bench/reload-health.ts [--servers 10000]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startBerth } from '../src/cli/serve.ts';
import { silentLogger } from '../src/observe/log.ts';

const { values } = parseArgs({ options: { servers: { type: 'string', default: '10000' } } });
const count = Number(values.servers);

function configFor(n: number, flavour: string): string {
  const lines = ['version: 1', 'listen: { host: 127.0.0.1, port: 0 }', 'servers:'];
  // Port 9 on loopback is never contacted: no client calls these routes.
  for (let i = 0; i < n; i++) lines.push(`  r-${i}:`, '    type: remote', `    url: http://127.0.0.1:9/mcp/${i === 0 ? flavour : 'x'}`);
  return lines.join('\n') + '\n';
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-health-'));
const file = path.join(dir, 'berth.yaml');
writeFileSync(file, configFor(count, 'a'));
const berth = await startBerth(file, { port: 0 }, silentLogger());
try {
  const generation = berth.routes.current.generation;
  const latencies: number[] = [];
  const started = performance.now();
  writeFileSync(file, configFor(count, 'b'));
  while (berth.routes.current.generation === generation && performance.now() - started < 60_000) {
    const t = performance.now();
    await fetch(`${berth.url}/healthz`);
    latencies.push(performance.now() - t);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const reloadMs = performance.now() - started;
  if (berth.routes.current.generation === generation) console.log(`not applied: ${JSON.stringify(berth.controller.lastReload)}`);
  latencies.sort((a, b) => a - b);
  console.log(`cpu: ${os.cpus()[0]?.model ?? 'unknown'} (${os.cpus().length} cores), load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`servers: ${count}; reload (file write to routes swapped, incl. 200 ms debounce): ${reloadMs.toFixed(0)} ms`);
  console.log(`/healthz during the reload: ${latencies.length} requests, p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms, max ${(latencies.at(-1) ?? 0).toFixed(1)} ms`);
} finally {
  await berth.stop();
  rmSync(dir, { recursive: true, force: true });
}
