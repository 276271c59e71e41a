// .ci/run makes the Docker daemon and Chromium through scripts/need.sh: in CI a missing one fails the
// run instead of letting its tests skip unseen.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const need = (ci: string | undefined, ...command: string[]) => {
  const env = { ...process.env };
  delete env['CI'];
  if (ci !== undefined) env['CI'] = ci;
  return spawnSync('bash', [path.join(root, 'scripts/need.sh'), 'widget', ...command], { env, encoding: 'utf8' });
};

test('with CI=true a part that cannot be made fails the run, saying what is missing', () => {
  const r = need('true', 'false');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /ERROR: no widget, and CI=true/);
});

test('outside CI it warns and goes on; a part that is made passes silently', () => {
  const r = need(undefined, 'false');
  assert.equal(r.status, 0);
  assert.match(r.stderr, /WARNING: no widget; the tests that need it will skip/);
  assert.deepEqual([need('true', 'true').status, need('true', 'true').stderr], [0, '']);
});

test('.ci/run makes the Docker daemon and Chromium through need.sh', () => {
  const run = readFileSync(path.join(root, '.ci/run'), 'utf8');
  assert.match(run, /^bash scripts\/need\.sh "Docker daemon" bash scripts\/docker-daemon\.sh$/m);
  assert.match(run, /^bash scripts\/need\.sh chromium bash scripts\/chromium\.sh$/m);
});
