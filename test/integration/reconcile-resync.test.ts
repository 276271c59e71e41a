// The periodic resync repairs drift level-based, and leaves alone what the
// controller decided: a unit that failed terminally is not retried, nor its
// failures forgotten, until the config changes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BackendError } from '../../src/backends/backend.ts';
import { LocalBackend } from '../../src/backends/local/index.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { createMetrics } from '../../src/observe/metrics.ts';
import { UpstreamPool } from '../../src/proxy/upstream/pool.ts';
import { Controller } from '../../src/reconcile/controller.ts';
import { configText } from '../helpers/berth.ts';
import { delegatingBackend } from '../helpers/delegating-backend.ts';

const refused = `  refused:
    type: multi-user
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: ["-e", "setInterval(() => {}, 1000)"]
`;

describe('resync', () => {
  test('does not retry a unit that failed terminally, nor reset its failures', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-resync-'));
    const file = path.join(dir, 'berth.yaml');
    writeFileSync(file, configText(refused));
    const local = new LocalBackend({ logger: silentLogger(), baseDir: dir });
    let ensured = 0;
    // Fault injection at the edge: the real backend, refusing this unit the way a daemon refuses a bad spec.
    const backend = delegatingBackend(local, {
      ensure: () => {
        ensured++;
        return Promise.reject(new BackendError('invalid_spec', 'the daemon refuses this spec', { retryable: false }));
      },
    });
    const pool = new UpstreamPool({ backend, logger: silentLogger() });
    const controller = new Controller({ file, logger: silentLogger(), metrics: createMetrics(), backend, upstreams: pool, routes: { swap: () => undefined } });
    try {
      assert.equal((await controller.reload('start')).kind, 'applied');
      await controller.settled();
      assert.deepEqual({ ensured, outcome: controller.units.get('refused')?.outcome.kind, failures: controller.units.get('refused')?.failures }, { ensured: 1, outcome: 'failed', failures: 1 });
      await controller.resync();
      await controller.settled();
      assert.deepEqual({ ensured, outcome: controller.units.get('refused')?.outcome.kind, failures: controller.units.get('refused')?.failures }, { ensured: 1, outcome: 'failed', failures: 1 });
      // A config change is new intent: then it is tried again.
      writeFileSync(file, configText(refused.replace('1000', '2000')));
      await controller.reload('edit');
      await controller.settled();
      assert.equal(ensured, 2);
    } finally {
      await controller.close();
      await pool.close();
      await local.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
