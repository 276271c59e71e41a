// How long `berth validate` and `berth plan` take on a config file as it
// grows: 1,000, 10,000 and 50,000 servers of the mix bench/plan.ts builds.
// Each figure is the median of a few runs in this process, after a warm-up,
// reading the file from disk like the commands do; `plan` is load + resolve +
// plan from nothing. Loading should grow linearly: the last column shows the
// time per server. Run: npm run bench:validate
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadConfigFile } from '../src/config/load.ts';
import { resolveDesiredState } from '../src/desired/resolve.ts';
import { planChanges } from '../src/reconcile/plan.ts';
import { buildConfig, time } from './plan.ts';

const SIZES = [1_000, 10_000, 50_000] as const;
// The 50,000-server file is about 13 MB, over the default 4 MiB limit.
const ENV = { BERTH_CONFIG_MAX_BYTES: String(64 * 1024 * 1024) };

function main(): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-validate-'));
  try {
    console.log('servers      MB   validate ms   plan ms   validate µs/server');
    for (const size of SIZES) {
      const file = path.join(dir, `berth-${size}.yaml`);
      const text = stringify(buildConfig(size));
      writeFileSync(file, text);
      const runs = size >= 50_000 ? 3 : 5;
      const validate = time(() => loadConfigFile(file, ENV), runs, 1);
      const plan = time(() => planChanges(resolveDesiredState(loadConfigFile(file, ENV)), { units: [], routes: [] }), runs, 1);
      console.log(`${size.toLocaleString('en-US').padStart(7)} ${(text.length / 1e6).toFixed(1).padStart(7)} ${validate.toFixed(0).padStart(13)} ${plan.toFixed(0).padStart(9)} ${((validate * 1000) / size).toFixed(0).padStart(20)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) main();
