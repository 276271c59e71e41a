// How long a reload takes to converge many servers on the local backend when
// one of them never becomes ready: 1,000 tiny stdio servers (a shell `cat`)
// plus one that never answers `initialize`. Prints the time until reload()
// returned (routes swapped), until every unit's ensure finished, and until the
// 999 were running, against a bound the slow one must not hold up.
// Run: npm run bench:reload [-- --servers 1000]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { LocalBackend } from '../src/backends/local/index.ts';
import { silentLogger } from '../src/observe/log.ts';
import { createMetrics } from '../src/observe/metrics.ts';
import { UpstreamPool } from '../src/proxy/upstream/pool.ts';
import { Controller } from '../src/reconcile/controller.ts';

const { values } = parseArgs({ options: { servers: { type: 'string', default: '1000' } } });
const count = Number(values.servers);

function configFor(n: number): string {
  const lines = ['version: 1', 'listen: { host: 127.0.0.1, port: 0 }', 'servers:'];
  lines.push('  never-ready:', '    type: multi-user', '    runtime: command', '    command: sleep', '    args: ["3600"]', '    startupTimeout: 10m');
  for (let i = 1; i < n; i++) lines.push(`  srv-${i}:`, '    type: multi-user', '    runtime: command', '    command: cat');
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-reload-'));
  const file = path.join(dir, 'berth.yaml');
  writeFileSync(file, 'version: 1\nservers: {}\n');
  const logger = silentLogger();
  const backend = new LocalBackend({ logger, baseDir: dir });
  const pool = new UpstreamPool({ backend, logger });
  let swapped = 0;
  const controller = new Controller({ file, logger, metrics: createMetrics(), backend, upstreams: pool, routes: { swap: () => void swapped++ } });
  try {
    await controller.reload('start');
    writeFileSync(file, configFor(count));
    const started = performance.now();
    const result = await controller.reload('bench');
    const returned = performance.now() - started;
    await controller.settled();
    const settled = performance.now() - started;
    const runningCount = async (): Promise<number> => (await backend.list()).filter((i) => i.state === 'running').length;
    while ((await runningCount()) < count - 1 && performance.now() - started < 120_000) await new Promise((r) => setTimeout(r, 50));
    const allRunning = performance.now() - started;
    const running = await runningCount();
    const failed = [...controller.units].filter(([, s]) => s.outcome.kind !== 'ok').length;
    console.log(`cpu: ${os.cpus()[0]?.model ?? 'unknown'} (${os.cpus().length} cores), node ${process.version}`);
    console.log(`servers: ${count} (one never becomes ready); reload: ${result.kind}; route swaps: ${swapped}`);
    console.log(`reload() returned (routes swapped) after ${returned.toFixed(0)} ms`);
    console.log(`every unit ensured after ${settled.toFixed(0)} ms; units not ok: ${failed}`);
    console.log(`${running} processes running after ${allRunning.toFixed(0)} ms`);
  } finally {
    await controller.close();
    await pool.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
