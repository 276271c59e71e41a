// Reading config files: the size limit, files that are not regular, checks
// that must not grow faster than the file, and loading on a worker thread
// without stalling the caller.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { buildConfig } from '../../bench/plan.ts';
import { ConfigError, formatIssue } from '../../src/config/issues.ts';
import type { LoadedConfig } from '../../src/config/load.ts';
import { DEFAULT_MAX_CONFIG_BYTES, loadConfigFile, parseConfig, readConfigFile } from '../../src/config/load.ts';
import { readConfigFileAsync } from '../../src/config/load-async.ts';
import { changedSince } from '../../src/config/version.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'berth-load-'));
const ENV = { HOME: '/root' };

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** The formatted issues loadConfigFile throws, or [] when it loads. */
function issuesOf(load: () => unknown): string[] {
  try {
    load();
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.issues.map(formatIssue);
  }
}

const SMALL = 'version: 1\nservers:\n  everything:\n    type: multi-user\n    runtime: npx\n    package: "@modelcontextprotocol/server-everything"\n';

describe('${file:…} references', () => {
  test('are read once, even when the config is then parsed again for positions', () => {
    const reads: string[] = [];
    const ctx = { env: ENV, baseDir: dir, readFile: (p: string) => (reads.push(p), 'token-from-file') };
    // Valid YAML the fast path reads and interpolates, with an issue it leaves to the full path.
    const text = 'version: 1\nservers:\n  a:\n    type: remote\n    url: https://mcp.example.com/mcp\n    headers: { Authorization: "Bearer ${file:token}" }\n    runtme: npx\n';
    const result = parseConfig('once.yaml', text, ctx);
    assert.deepEqual(result.ok ? [] : result.issues.map(formatIssue), ['once.yaml:7:5 servers.a.runtme: unknown key `runtme` (did you mean `runtime`?)']);
    assert.deepEqual(reads, [path.join(dir, 'token')]);
  });
});

describe('the size limit', () => {
  test('a regular file over the limit is refused before it is read', () => {
    const file = write('huge.yaml', '');
    truncateSync(file, 2 * 1024 ** 3); // sparse: reading it would take seconds and 2 GB
    // The size in the message comes from stat: the file was not read to find it.
    assert.deepEqual(issuesOf(() => loadConfigFile(file, ENV)), [`${file}:1:1 file is 2,147,483,648 bytes; the limit is 4 MiB (is this the config file? set BERTH_CONFIG_MAX_BYTES to allow a larger one)`]);
  });

  test('/dev/zero (no size, no end) fails after reading just past the limit', () => {
    const before = process.memoryUsage().rss;
    assert.deepEqual(issuesOf(() => loadConfigFile('/dev/zero', ENV)), ['/dev/zero:1:1 file is not a regular file and goes on past 4,194,304 bytes; the limit is 4 MiB (is this the config file? set BERTH_CONFIG_MAX_BYTES to allow a larger one)']);
    assert.ok(process.memoryUsage().rss - before < 10 * DEFAULT_MAX_CONFIG_BYTES, 'memory stays near the limit');
  });

  test('a file within the limit loads', () => {
    assert.equal(issuesOf(() => loadConfigFile(write('ok.yaml', SMALL), ENV)).length, 0);
  });

  test('BERTH_CONFIG_MAX_BYTES moves the limit', () => {
    const file = write('small.yaml', SMALL);
    assert.deepEqual(issuesOf(() => loadConfigFile(file, { ...ENV, BERTH_CONFIG_MAX_BYTES: '64' })), [`${file}:1:1 file is ${SMALL.length} bytes; the limit is 64 bytes (is this the config file? set BERTH_CONFIG_MAX_BYTES to allow a larger one)`]);
    assert.deepEqual(issuesOf(() => loadConfigFile(file, { ...ENV, BERTH_CONFIG_MAX_BYTES: 'lots' })), [], 'a value that is not a number keeps the default');
  });

  test('${file:…} references are held to the same limit', () => {
    const file = write('ref.yaml', `${SMALL}    env: { BLOB: "\${file:/dev/zero}" }\n`);
    assert.deepEqual(issuesOf(() => loadConfigFile(file, ENV)), [`${file}:7:18 servers.everything.env.BLOB: cannot read /dev/zero for \${file:/dev/zero} (larger than 4 MiB) (paths are relative to the config file)`]);
  });
});

// How loading time grows with the file is measured by `npm run bench:validate`
// (CPU time per server at 1,000, 10,000 and 50,000 servers), not timed here.
describe('checks that once grew faster than the file', () => {
  const ctx = { env: ENV, readFile: () => '', baseDir: dir };

  test('duplicate keys are still found, with both positions', () => {
    const text = `version: 1\nservers:\n  wide:\n    type: multi-user\n    runtime: npx\n    package: p\n    env:\n      K0: v\n      K1: v\n      K2: v\n      K1: again\n`;
    const result = parseConfig('dup.yaml', text, ctx);
    assert.equal(result.ok, false);
    assert.deepEqual(result.ok ? [] : result.issues.map(formatIssue), ['dup.yaml:11:7 servers.wide.env.K1: duplicate key: each key may appear once in a mapping (first at line 9, column 7)']);
  });

  // Each layer is two composites of both servers of the layer below: 2^30 paths
  // from the top, which the cycle check once walked one by one (23 layers: 7 s;
  // 30 would take hours, far past the tier's per-test timeout). 30 stays below
  // the nesting limit (32), so only the cycle check is measured here.
  test('layers of composites sharing components are checked for cycles once each', () => {
    const layers = 30;
    const servers: Record<string, unknown> = { leaf: { type: 'remote', url: 'https://mcp.example.com/mcp' } };
    let below = ['leaf'];
    for (let l = 0; l < layers; l++) {
      const layer = [`l${l}-a`, `l${l}-b`];
      for (const name of layer) servers[name] = { type: 'composite', components: below.map((server, i) => ({ server, prefix: `p${i}_` })) };
      below = layer;
    }
    assert.ok(parseConfig('layers.yaml', stringify({ version: 1, servers }), ctx).ok);
    // The top composite made part of the bottom layer: cycles through every
    // layer, closed by each composite of layer 1, each reported there.
    (servers['l0-a'] as { components: unknown[] }).components.push({ server: `l${layers - 1}-a`, prefix: 'top_' });
    const result = parseConfig('layers.yaml', stringify({ version: 1, servers }), ctx);
    const cycles = result.ok ? [] : result.issues.filter((i) => i.code === 'composite_cycle');
    assert.deepEqual(cycles.map((i) => i.path), ['servers.l1-a.components[0].server', 'servers.l1-b.components[0].server']);
    for (const cycle of cycles) assert.match(cycle.message, new RegExp(`^composites form a cycle: l0-a → l${layers - 1}-a → l${layers - 2}-[ab] → .* → l1-[ab] → l0-a$`));
  });
});

/** The config a read gave; fails the test with the issues when there are any. */
async function loadedBy(read: Promise<ReturnType<typeof readConfigFile>>): Promise<LoadedConfig> {
  const result = await read;
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
}

describe('readConfigFileAsync', () => {
  test('loads the same config as loadConfigFile, frozen', async () => {
    const file = write('async.yaml', SMALL);
    const loaded = await loadedBy(readConfigFileAsync(file, ENV));
    assert.deepEqual(loaded, loadConfigFile(file, ENV));
    assert.ok(Object.isFrozen(loaded.config.servers['everything']));
  });

  test('gives the same issues as loadConfigFile, every one with its position', async () => {
    const file = write('bad.yaml', 'version: 1\nservers:\n  a:\n    type: remote\n    url: https://x.example/mcp\n    runtme: npx\n  b:\n    type: multi-user\n');
    const expected = issuesOf(() => loadConfigFile(file, ENV));
    assert.equal(expected.length, 2);
    const result = await readConfigFileAsync(file, ENV);
    assert.equal(result.ok, false);
    assert.deepEqual(result.ok ? [] : result.issues.map(formatIssue), expected);
  });

  test('reads ${env:…} from the env it is given, not the process', async () => {
    const file = write('env.yaml', 'version: 1\nlisten:\n  port: ${env:BERTH_TEST_ASYNC_PORT}\nservers: {}\n');
    assert.equal((await loadedBy(readConfigFileAsync(file, { BERTH_TEST_ASYNC_PORT: '9123' }))).config.listen?.port, 9123);
  });

  test('an aborted load rejects with the reason', async () => {
    const file = write('abort.yaml', stringify(buildConfig(2_000)));
    const controller = new AbortController();
    const loading = readConfigFileAsync(file, ENV, controller.signal);
    controller.abort(new Error('superseded'));
    await assert.rejects(loading, /superseded/);
    await assert.rejects(readConfigFileAsync(file, ENV, controller.signal), /superseded/, 'an already aborted signal starts nothing');
  });

  test('the event loop keeps running while 10,000 servers parse', { timeout: 60_000 }, async () => {
    const file = write('big.yaml', stringify(buildConfig(10_000)));
    // Turns of the event loop taken while the load is pending. Parsing on this thread would hold the
    // loop until the config is parsed, so no turn would come before the load settles.
    let settled = false;
    let turns = 0;
    const turn = (): void => {
      if (settled) return;
      turns++;
      if (turns < 20) setImmediate(turn);
    };
    setImmediate(turn);
    const loaded = await loadedBy(readConfigFileAsync(file, ENV).finally(() => (settled = true)));
    assert.equal(Object.keys(loaded.config.servers).length, 10_000);
    assert.equal(turns, 20, `only ${turns} turns of the event loop before the load settled`);
  });
});

describe('the versions a read carries', () => {
  test('name the config and every ${file:…} it read, as read; any later write is a change', () => {
    const secret = write('version-secret.txt', 's1\n');
    const file = write('version.yaml', `version: 1\nservers:\n  a:\n    type: remote\n    url: https://x.example/mcp\n    headers: { X-Key: "\${file:${path.basename(secret)}}" }\n`);
    const read = readConfigFile(file, ENV);
    assert.deepEqual(read.sources.map((s) => s.path), [file, secret]);
    assert.equal(changedSince(read.sources), false);
    writeFileSync(secret, 's2\n');
    assert.equal(changedSince(read.sources), true, 'an edit of a referenced file');
    const again = readConfigFile(file, ENV);
    assert.equal(changedSince(again.sources), false);
    const tmp = write('version.yaml.tmp', readFileSync(file, 'utf8'));
    renameSync(tmp, file);
    assert.equal(changedSince(again.sources), true, 'the same text renamed over the config');
  });

  test('a file that could not be read counts as missing, so its appearance is a change', () => {
    const file = path.join(dir, 'not-yet.yaml');
    const read = readConfigFile(file, ENV);
    assert.equal(read.ok, false);
    assert.equal(changedSince(read.sources), false);
    writeFileSync(file, SMALL);
    assert.equal(changedSince(read.sources), true);
  });
});
