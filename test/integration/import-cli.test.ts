// `berth import` as users run it: a real `node bin/berth.js` process on the
// client config fixtures and real files in a temporary directory.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CliResult } from '../helpers/cli.ts';
import { runBerth } from '../helpers/cli.ts';
import { clientFixtures } from '../helpers/clients.ts';

let dir = '';

function berth(args: readonly string[]): Promise<CliResult> {
  return runBerth(args, { cwd: dir });
}

function assertNoStack(result: { stdout: string; stderr: string }): void {
  assert.doesNotMatch(`${result.stdout}\n${result.stderr}`, /^\s+at |node:internal/m);
}

const BERTH_YAML = `version: 1
# servers below
servers:
  everything:
    type: multi-user
    runtime: npx
    package: "@modelcontextprotocol/server-everything@2026.8.31"
`;

describe('berth import (CLI)', () => {
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'berth-import-'));
    copyFileSync(path.join(clientFixtures, 'claude_desktop_config.json'), path.join(dir, 'claude_desktop_config.json'));
    copyFileSync(path.join(clientFixtures, 'vscode/.vscode/mcp.json'), path.join(dir, 'vscode-mcp.json'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the servers as a fragment and the changes it made on stderr', async () => {
    const result = await berth(['import', 'claude_desktop_config.json']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^servers:\n {2}filesystem:/m);
    assert.match(result.stderr, /^warning claude_desktop_config\.json:11:41 mcpServers\.github\.env\.GITHUB_PERSONAL_ACCESS_TOKEN: secret not copied/m);
    assert.doesNotMatch(result.stdout, /FAKE/);
    assertNoStack(result);
  });

  it('leaves out what it cannot translate, names it, and exits 1', async () => {
    const result = await berth(['import', 'vscode-mcp.json', '--format', 'vscode']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error vscode-mcp\.json:37:65 servers\.fs\.args\[2\]: \$\{workspaceFolder\} cannot be translated/m);
    assert.match(result.stdout, /# Not imported:\n# {3}fs: /);
    assertNoStack(result);
  });

  it('adds to a berth.yaml with --into, then refuses the same names again and leaves the file alone', async () => {
    writeFileSync(path.join(dir, 'berth.yaml'), BERTH_YAML);
    const first = await berth(['import', 'claude_desktop_config.json', '--into', 'berth.yaml']);
    assert.equal(first.code, 0, first.stderr);
    const merged = readFileSync(path.join(dir, 'berth.yaml'), 'utf8');
    assert.ok(merged.startsWith(BERTH_YAML));
    assert.match(merged, /\n {2}linear-remote:\n {4}type: remote\n/);
    const second = await berth(['import', 'claude_desktop_config.json', '--into', 'berth.yaml']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /^error berth\.yaml:\d+:3 servers\.filesystem: a server named filesystem is already here/m);
    assert.equal(readFileSync(path.join(dir, 'berth.yaml'), 'utf8'), merged);
    assertNoStack(second);
  });

  it('writes nothing to --into when a server cannot be imported', async () => {
    writeFileSync(path.join(dir, 'other.yaml'), BERTH_YAML);
    const result = await berth(['import', 'vscode-mcp.json', '--format', 'vscode', '--into', 'other.yaml']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /nothing written to other\.yaml/);
    assert.equal(readFileSync(path.join(dir, 'other.yaml'), 'utf8'), BERTH_YAML);
  });

  it('reports unreadable and malformed files without a stack trace', async () => {
    const missing = await berth(['import', 'nope.json']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^berth: cannot read nope\.json \(ENOENT\)/m);
    writeFileSync(path.join(dir, 'broken.json'), '{\n  "mcpServers": {\n    "a": { "command": "x" ]\n}\n');
    const broken = await berth(['import', 'broken.json']);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /^error broken\.json:3:\d+ /m);
    writeFileSync(path.join(dir, 'unknown.json'), '{ "hello": "world" }\n');
    const unknown = await berth(['import', 'unknown.json']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /cannot tell which client this file is for \(name it with --format: registry, vscode/);
    for (const r of [missing, broken, unknown]) assertNoStack(r);
  });

  it('berth connect names an unknown server and the ones there are, and refuses a format that is not a client', async () => {
    writeFileSync(path.join(dir, 'connect.yaml'), BERTH_YAML);
    const unknown = await berth(['connect', 'cursor', 'nope', '--config', 'connect.yaml']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^berth: no server named nope in connect\.yaml; its servers are: everything$/m);
    const registry = await berth(['connect', 'registry', '--config', 'connect.yaml']);
    assert.notEqual(registry.code, 0);
    assert.match(registry.stderr, /Allowed choices are claude-desktop|allowed choices/i);
    const missing = await berth(['connect', 'cursor', '--config', 'absent.yaml']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^berth: cannot read absent\.yaml \(ENOENT\); name the config with --config$/m);
    for (const r of [unknown, registry, missing]) assertNoStack(r);
  });
});
