import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../src/config/issues.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { MAX_COMPOSITE_DEPTH } from '../../src/config/semantics.ts';

/** A config with a chain of `depth` composites over one remote: c1 holds the remote, c2 holds c1, … */
function chain(depth: number): string {
  const lines = ['version: 1', 'servers:', '  leaf:', '    type: remote', '    url: https://example.com/mcp'];
  for (let i = 1; i <= depth; i++) lines.push(`  c${i}:`, '    type: composite', '    components:', `      - server: ${i === 1 ? 'leaf' : `c${i - 1}`}`);
  return `${lines.join('\n')}\n`;
}

function issuesOf(text: string): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-depth-'));
  const file = path.join(dir, 'berth.yaml');
  writeFileSync(file, text);
  try {
    loadConfigFile(file);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i) => `${i.line}:${i.col} ${i.path} ${i.code}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('composites nested up to the limit validate', () => {
  assert.deepEqual(issuesOf(chain(MAX_COMPOSITE_DEPTH)), []);
});

test('one layer past the limit is reported once, at the component that crosses it, however long the chain', () => {
  const at = `${5 + 4 * MAX_COMPOSITE_DEPTH + 4}:17 servers.c${MAX_COMPOSITE_DEPTH + 1}.components[0].server composite_too_deep`;
  assert.deepEqual(issuesOf(chain(MAX_COMPOSITE_DEPTH + 1)), [at]);
  assert.deepEqual(issuesOf(chain(2_000)), [at]);
});
