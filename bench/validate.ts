// How long `berth validate` and `berth plan` take on a config file as it
// grows: 1,000, 10,000 and 50,000 servers of the mix bench/plan.ts builds,
// reading the file from disk like the commands do; `plan` is load + resolve +
// plan from nothing. Each run is timed in this process after a warm-up, as the
// CPU time of this thread (what the machine's other work cannot inflate much)
// and as wall time; the figures are the median with the fastest and slowest
// run. Loading should grow linearly: the last column is CPU time per server.
// Run: npm run bench:validate [-- --runs N] [SIZE…]   (e.g. `-- 10000`)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { loadConfigFile } from '../src/config/load.ts';
import { resolveDesiredState } from '../src/desired/resolve.ts';
import { planChanges } from '../src/reconcile/plan.ts';
import { buildConfig } from './plan.ts';

const DEFAULT_SIZES = [1_000, 10_000, 50_000] as const;
// The 50,000-server file is about 13 MB, over the default 4 MiB limit.
const ENV = { BERTH_CONFIG_MAX_BYTES: String(64 * 1024 * 1024) };

/** Median, fastest and slowest of some samples, in milliseconds. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function spread(samples: readonly number[]): Spread {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN, min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN };
}

/** This thread's CPU time and the wall time of `runs` calls of `fn`, after one warm-up call. */
export function measure(fn: () => unknown, runs: number): { cpu: Spread; wall: Spread } {
  fn();
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < runs; i++) {
    const cpuStart = process.threadCpuUsage();
    const wallStart = performance.now();
    fn();
    wall.push(performance.now() - wallStart);
    const used = process.threadCpuUsage(cpuStart);
    cpu.push((used.user + used.system) / 1000);
  }
  return { cpu: spread(cpu), wall: spread(wall) };
}

const show = (s: Spread): string => `${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)})`.padStart(19);
const load = (): string => loadavg()[0]?.toFixed(1) ?? '?';

function main(): void {
  const { values, positionals } = parseArgs({ options: { runs: { type: 'string' } }, allowPositionals: true });
  const sizes = positionals.length > 0 ? positionals.map(Number) : DEFAULT_SIZES;
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-validate-'));
  try {
    console.log('milliseconds, median (fastest–slowest); CPU = this thread\'s CPU time');
    console.log('servers    MB      validate CPU     validate wall          plan CPU   µs/server   load');
    for (const size of sizes) {
      const file = path.join(dir, `berth-${size}.yaml`);
      const text = stringify(buildConfig(size));
      writeFileSync(file, text);
      const runs = values.runs === undefined ? (size >= 50_000 ? 3 : 5) : Number(values.runs);
      const before = load();
      const validate = measure(() => loadConfigFile(file, ENV), runs);
      const plan = measure(() => planChanges(resolveDesiredState(loadConfigFile(file, ENV)), { units: [], routes: [] }), runs);
      const perServer = ((validate.cpu.median * 1000) / size).toFixed(0);
      console.log(`${size.toLocaleString('en-US').padStart(7)} ${(text.length / 1e6).toFixed(1).padStart(5)} ${show(validate.cpu)} ${show(validate.wall)} ${show(plan.cpu)} ${perServer.padStart(11)}   ${before}→${load()}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) main();
