// Which config the commands read, and `berth status` without one.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { configPath, optionalConfigPath } from '../../src/cli/config-path.ts';
import { berthUrl } from '../../src/cli/status.ts';

const run = promisify(execFile);
const bin = path.join(import.meta.dirname, '../../bin/berth.js');

test('optionalConfigPath: undefined only when nothing was named and ./berth.yaml is missing', () => {
  const cwd = process.cwd();
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-cwd-'));
  process.chdir(dir);
  try {
    assert.equal(optionalConfigPath(undefined, {}), undefined);
    assert.equal(optionalConfigPath('other.yaml', {}), 'other.yaml', 'a named file is read, and may fail');
    assert.equal(optionalConfigPath(undefined, { BERTH_CONFIG: 'env.yaml' }), 'env.yaml');
    writeFileSync('berth.yaml', 'version: 1\nservers: {}\n');
    assert.equal(optionalConfigPath(undefined, {}), 'berth.yaml');
    assert.equal(configPath(undefined, { BERTH_CONFIG: '' }), 'berth.yaml');
  } finally {
    process.chdir(cwd);
  }
});

test('berthUrl: the URL given, else the listen settings, else the default', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-url-'));
  const file = path.join(dir, 'berth.yaml');
  writeFileSync(file, 'version: 1\nlisten: { host: 0.0.0.0, port: 9191 }\nservers: {}\n');
  assert.equal(berthUrl(undefined), 'http://127.0.0.1:8080');
  assert.equal(berthUrl(file), 'http://127.0.0.1:9191');
  assert.equal(berthUrl(file, 'http://127.0.0.1:7000/'), 'http://127.0.0.1:7000');
});

test('berth status with no config file asks the default URL instead of failing on ./berth.yaml', { timeout: 60_000 }, async () => {
  const cwd = mkdtempSync(path.join(tmpdir(), 'berth-status-'));
  const env = { ...process.env, BERTH_CONFIG: '' };
  // fetch refuses port 1 outright: the point is which URL is asked, not the answer.
  const withUrl = await run(process.execPath, [bin, 'status', '--url', 'http://127.0.0.1:1'], { cwd, env }).catch((err: { code: number; stderr: string }) => err);
  assert.match(withUrl.stderr, /cannot reach berth at http:\/\/127\.0\.0\.1:1\b/);
  const bare = await run(process.execPath, [bin, 'status'], { cwd, env, timeout: 30_000 }).catch((err: { stdout: string; stderr: string }) => err);
  assert.doesNotMatch(bare.stderr, /cannot read the config file/);
  assert.match(bare.stderr + bare.stdout, /127\.0\.0\.1:8080|SERVER/, 'it asked the default URL');
});
