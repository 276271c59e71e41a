// Settings berth reads only at start-up: which changes need a restart, and how `berth plan` says so.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { restartRequired } from '../../src/config/restart.ts';
import type { BerthConfiguration } from '../../src/config/types.gen.ts';

const run = promisify(execFile);
const bin = path.join(import.meta.dirname, '../../bin/berth.js');
const base: BerthConfiguration = { version: 1, servers: {} };

test('restartRequired names the start-up fields that changed', async (t) => {
  const cases: { name: string; previous: BerthConfiguration; next: BerthConfiguration; expected: string[] }[] = [
    { name: 'nothing changed', previous: base, next: base, expected: [] },
    { name: 'the port', previous: { ...base, listen: { port: 8080 } }, next: { ...base, listen: { port: 9090 } }, expected: ['listen.port'] },
    { name: 'a default written out is no change', previous: base, next: { ...base, listen: { host: '127.0.0.1', port: 8080 }, backend: { type: 'local' } }, expected: [] },
    { name: 'a list is one field', previous: { ...base, listen: { allowedOrigins: ['https://a.example'] } }, next: { ...base, listen: { allowedOrigins: ['https://b.example'] } }, expected: ['listen.allowedOrigins'] },
    { name: 'the backend', previous: base, next: { ...base, backend: { type: 'docker', network: 'mcp' } }, expected: ['backend.network', 'backend.type'] },
    { name: 'the state key or path, never its value', previous: { ...base, state: { key: 'k'.repeat(32) } }, next: { ...base, state: { key: 'n'.repeat(32), path: 'other.json' } }, expected: ['state.key', 'state.path'] },
    { name: 'telemetry is set up once', previous: base, next: { ...base, telemetry: { sampling: 0.5, capture: ['a'] } }, expected: ['telemetry.capture', 'telemetry.sampling'] },
    { name: 'servers never need one', previous: base, next: { ...base, servers: { a: { type: 'remote', url: 'https://a.example/mcp' } } }, expected: [] },
    { name: 'several, sorted', previous: base, next: { ...base, listen: { publicUrl: 'https://mcp.example.com', host: '0.0.0.0' }, backend: { type: 'docker' } }, expected: ['backend.type', 'listen.host', 'listen.publicUrl'] },
  ];
  for (const c of cases) await t.test(c.name, () => assert.deepEqual(restartRequired(c.previous, c.next), c.expected));
});

test('berth plan reports listen changes as needing a restart', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-restart-'));
  const file = (name: string, listen: string): string => {
    const full = path.join(dir, name);
    writeFileSync(full, `version: 1\nlisten: ${listen}\nservers: {}\n`);
    return full;
  };
  const before = file('before.yaml', '{ port: 8080 }');
  const after = file('after.yaml', '{ port: 9090 }');
  const text = await run(process.execPath, [bin, 'plan', after, '--from', before]).then(
    () => assert.fail('a restart-only change is a change: exit 2'),
    (err: { code: number; stdout: string }) => {
      assert.equal(err.code, 2);
      return err.stdout;
    },
  );
  assert.match(text, /! restart {2}listen\.port {2}\(needs restart: applied only when berth starts\)/);
  assert.match(text, /1 setting needs restart\.$/m);
  const json = await run(process.execPath, [bin, 'plan', after, '--from', before, '--json']).catch((err: { stdout: string }) => err);
  assert.deepEqual((JSON.parse(json.stdout) as { needsRestart: string[] }).needsRestart, ['listen.port']);
  const same = await run(process.execPath, [bin, 'plan', before, '--from', before, '--json']);
  assert.deepEqual(JSON.parse(same.stdout), { changes: false, actions: [], routes: [], auth: [], needsRestart: [] });
});
