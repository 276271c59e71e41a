import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { detectFormat, FORMATS } from '../../src/clients/formats.ts';
import { importClientConfig } from '../../src/clients/import.ts';
import type { ImportIssue } from '../../src/clients/model.ts';
import { mergeInto, renderFragment } from '../../src/clients/render.ts';
import { formatIssue } from '../../src/config/issues.ts';
import { berthAround, clientFixtureFiles, clientFixtures, loadWithPlaceholders } from '../helpers/clients.ts';

// Every client config in test/fixtures/clients/ (written from each client's
// documentation) sits beside `<file>.expected`: the issues `berth import`
// reports for it, then the fragment it prints. BERTH_UPDATE_GOLDEN=1 rewrites
// them; review the diff before committing.

function importFixture(relative: string, secrets: 'auto' | 'env' | 'user' = 'auto') {
  const text = readFileSync(path.join(clientFixtures, relative), 'utf8');
  return { text, outcome: importClientConfig(relative, text, { secrets }) };
}

function issueLines(issues: readonly ImportIssue[]): string {
  return issues.map((i) => `${i.severity} ${formatIssue(i)}\n`).join('');
}

describe('berth import: client fixtures', () => {
  const files = clientFixtureFiles();
  it('has a fixture for every format', () => {
    const seen = new Set(files.map((f) => importFixture(f).outcome.format?.id));
    for (const format of FORMATS) assert.ok(seen.has(format.id), `no fixture for ${format.id}`);
  });

  for (const file of files) {
    it(`${file}: matches ${file}.expected`, () => {
      const { outcome } = importFixture(file);
      assert.ok(outcome.format !== undefined, 'format detected');
      const actual = `${issueLines(outcome.issues)}\n${renderFragment(outcome.imported, path.basename(file), outcome.format.label)}`;
      const golden = path.join(clientFixtures, `${file}.expected`);
      if (process.env['BERTH_UPDATE_GOLDEN'] === '1') writeFileSync(golden, actual);
      assert.ok(existsSync(golden), `no ${file}.expected: run with BERTH_UPDATE_GOLDEN=1 and review it`);
      assert.equal(actual, readFileSync(golden, 'utf8'));
    });

    for (const secrets of ['auto', 'env', 'user'] as const) {
      it(`${file}: with --secrets ${secrets}, the output loads in berth and holds no secret of the input`, () => {
        const { text, outcome } = importFixture(file, secrets);
        assert.ok(outcome.format !== undefined);
        const fragment = renderFragment(outcome.imported, file, outcome.format.label);
        const loaded = loadWithPlaceholders(berthAround(fragment));
        assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.map(formatIssue).join('\n'));
        // The fixtures' secrets all carry FAKE; none may reach the output.
        for (const match of text.matchAll(/[\w-]*FAKE[\w-]*/g)) assert.ok(!fragment.includes(match[0]), `${match[0]} copied into the output`);
      });
    }
  }
});

describe('berth import: positions', () => {
  /** 1-based line and column of `needle` in `text`. */
  const at = (text: string, needle: string): string => {
    const offset = text.indexOf(needle);
    const before = text.slice(0, offset).split('\n');
    return `${before.length}:${(before.at(-1) ?? '').length + 1}`;
  };

  it('reports an untranslatable variable at the value that holds it', () => {
    const { text, outcome } = importFixture('vscode/.vscode/mcp.json');
    const issue = outcome.issues.find((i) => i.code === 'import_variable_unsupported');
    assert.equal(`${issue?.line}:${issue?.col}`, at(text, '"${workspaceFolder}"'));
    assert.equal(issue?.path, 'servers.fs.args[2]');
  });

  it('reports JSON syntax errors at their position, with comments blanked and not moved', () => {
    const text = '{\n  // a comment, then a broken value\n  "mcpServers": { "a": { "command": "x" ] }\n}\n';
    const { issues } = importClientConfig('mcp.json', text, { secrets: 'auto' });
    assert.equal(issues[0]?.code, 'import_syntax');
    assert.equal(issues[0]?.line, 3);
  });

  it('reports TOML syntax errors at their position', () => {
    const text = '[mcp_servers.a]\ncommand = "x"\nargs = [1, \n';
    const { issues } = importClientConfig('config.toml', text, { secrets: 'auto' });
    assert.equal(issues[0]?.code, 'import_syntax');
    assert.ok((issues[0]?.line ?? 0) >= 3, formatIssue(issues[0] as ImportIssue));
  });

  it('finds TOML keys, inline-table keys included', () => {
    const { text, outcome } = importFixture('codex/config.toml');
    const moved = outcome.issues.find((i) => i.path === 'mcp_servers.context7.env.CONTEXT7_API_KEY');
    assert.equal(`${moved?.line}:${moved?.col}`, at(text, '"ctx7sk'));
  });

  it('names a server it cannot run, at the server, and leaves it out', () => {
    const { text, outcome } = importFixture('registry/listing.json');
    const issue = outcome.issues.find((i) => i.code === 'import_unsupported');
    assert.match(issue?.message ?? '', /bundle-only is not imported: package type mcpb/);
    assert.equal(`${issue?.line}:${issue?.col}`, at(text, '"io.github.example/bundle-only"'));
    assert.ok(!outcome.imported.servers.some(([name]) => name === 'bundle-only'));
    assert.deepEqual(outcome.imported.skipped.map((s) => s.name), ['bundle-only']);
  });
});

describe('berth import: secrets', () => {
  const secret = fc.stringMatching(/^[A-Za-z0-9]{12,40}$/).map((s) => `Zq9${s}`);
  const name = fc.constantFrom('API_KEY', 'GITHUB_TOKEN', 'DB_PASSWORD', 'SERVICE_SECRET', 'AUTH');

  it('never copies a secret-named value, in env, headers, URLs or flags, under any policy', () => {
    fc.assert(
      fc.property(secret, name, fc.constantFrom('auto', 'env', 'user'), (value, key, secrets) => {
        const doc = {
          mcpServers: {
            local: { command: 'node', args: ['server.js', `--${key.toLowerCase().replaceAll('_', '-')}`, value], env: { [key]: value } },
            remote: { type: 'http', url: `https://mcp.example.com/mcp?${key.toLowerCase()}=${value}`, headers: { Authorization: `Bearer ${value}`, [`X-${key}`]: value } },
          },
        };
        const { imported, issues } = importClientConfig('.mcp.json', JSON.stringify(doc, null, 2), { secrets });
        assert.deepEqual(issues.filter((i) => i.severity === 'error'), []);
        const fragment = renderFragment(imported, '.mcp.json', 'Claude Code');
        assert.ok(!fragment.includes(value), fragment);
        const loaded = loadWithPlaceholders(berthAround(fragment));
        assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.map(formatIssue).join('\n'));
      }),
      { numRuns: 60 },
    );
  });

  it('gives two servers that share a variable name for different secrets different variables', () => {
    const doc = { mcpServers: { a: { command: 'a', env: { TOKEN: 'first-secret-value' } }, b: { command: 'b', env: { TOKEN: 'second-secret-value' } } } };
    const { imported } = importClientConfig('claude_desktop_config.json', JSON.stringify(doc), { secrets: 'auto' });
    const env = imported.servers.map(([, s]) => s.env?.['TOKEN']);
    assert.deepEqual(env, ['${env:TOKEN}', '${env:B_TOKEN}']);
  });

  it('escapes a literal ${ from a client that expands no variables', () => {
    const doc = { mcpServers: { a: { command: 'echo', args: ['${NOT_A_VARIABLE}'] } } };
    const { imported } = importClientConfig('claude_desktop_config.json', JSON.stringify(doc), { secrets: 'auto' });
    assert.deepEqual(imported.servers[0]?.[1].args, ['$${NOT_A_VARIABLE}']);
  });
});

describe('berth import: formats', () => {
  it('tells formats by name, else by shape', () => {
    const cases: [string, unknown, string | undefined][] = [
      ['claude_desktop_config.json', {}, 'claude-desktop'],
      ['proj/.mcp.json', {}, 'claude-code'],
      ['proj/.vscode/mcp.json', {}, 'vscode'],
      ['proj/.cursor/mcp.json', {}, 'cursor'],
      ['mcp_config.json', {}, 'windsurf'],
      ['home/.gemini/settings.json', {}, 'gemini'],
      ['config.toml', {}, 'codex'],
      ['server.json', {}, 'registry'],
      ['anything.json', { servers: {} }, 'vscode'],
      ['User/settings.json', { 'editor.fontSize': 14, mcp: { servers: {} } }, 'vscode'],
      ['home/.claude.json', {}, 'claude-code'],
      ['anything.json', { name: 'a/b', packages: [] }, 'registry'],
      ['anything.json', { servers: [{ server: { name: 'a/b', remotes: [] } }] }, 'registry'],
      ['anything.json', { mcpServers: { a: { serverUrl: 'https://x' } } }, 'windsurf'],
      ['anything.json', { mcpServers: { a: { httpUrl: 'https://x' } } }, 'gemini'],
      ['anything.json', { mcpServers: { a: { type: 'http', url: 'https://x' } } }, 'claude-code'],
      ['anything.json', { mcpServers: { a: { command: 'x' } } }, 'claude-desktop'],
      ['anything.json', { something: 'else' }, undefined],
    ];
    for (const [file, data, id] of cases) assert.equal(detectFormat(file, data)?.format.id, id, file);
  });

  it('says when it guessed the format', () => {
    const guessed = importClientConfig('mcp.json', JSON.stringify({ mcpServers: { a: { command: 'x', args: ['${env:Y}'] } } }), { secrets: 'auto' });
    assert.equal(guessed.format?.id, 'claude-desktop');
    assert.deepEqual(guessed.issues.map((i) => [i.code, i.line, i.col]), [['import_format_guessed', 1, 1]]);
    const named = importClientConfig('.cursor/mcp.json', JSON.stringify({ mcpServers: { a: { command: 'x' } } }), { secrets: 'auto' });
    assert.deepEqual(named.issues, []);
  });

  it('lists the same formats on the command line as in the table', () => {
    const cli = readFileSync(new URL('../../src/cli.ts', import.meta.url), 'utf8');
    const listed = /const CLIENT_FORMATS = \[([^\]]*)\]/.exec(cli)?.[1]?.match(/'[^']+'/g)?.map((s) => s.slice(1, -1));
    assert.deepEqual(listed, FORMATS.map((f) => f.id));
  });
});

describe('berth import --into', () => {
  const BASE = `# yaml-language-server: $schema=./schemas/berth.schema.json
version: 1
listen: { host: 127.0.0.1, port: 8080 }   # keep me
servers:
  # the first one
  everything:
    type: multi-user
    runtime: npx
    package: '@modelcontextprotocol/server-everything@2026.8.31'   # pinned

# end of servers
`;
  const { imported } = importFixture('claude_desktop_config.json').outcome;

  it('adds the servers after the last one and leaves every existing byte in place', () => {
    const merged = mergeInto('berth.yaml', BASE, imported.servers);
    assert.ok(merged.ok, merged.ok ? '' : merged.issues.map(formatIssue).join('\n'));
    const cut = BASE.indexOf('\n# end of servers');
    assert.ok(merged.text.startsWith(BASE.slice(0, cut)));
    assert.ok(merged.text.endsWith(BASE.slice(cut)));
    const loaded = loadWithPlaceholders(merged.text);
    assert.ok(loaded.ok);
    assert.deepEqual(Object.keys(loaded.value.config.servers), ['everything', ...imported.servers.map(([n]) => n)]);
  });

  it('refuses names the file already has, at their position', () => {
    const once = mergeInto('berth.yaml', BASE, imported.servers);
    assert.ok(once.ok);
    const twice = mergeInto('berth.yaml', once.text, imported.servers);
    assert.ok(!twice.ok);
    assert.deepEqual(twice.issues.map((i) => i.code), imported.servers.map(() => 'import_name_taken'));
    const github = twice.issues.find((i) => i.path === 'servers.github');
    const line = once.text.split('\n').findIndex((l) => l === '  github:') + 1;
    assert.equal(`${github?.line}:${github?.col}`, `${line}:3`);
  });

  it('writes into a file whose servers are in flow style or missing', () => {
    for (const base of ['version: 1\nservers: {}\n', 'version: 1 # only\n']) {
      const merged = mergeInto('berth.yaml', base, imported.servers);
      assert.ok(merged.ok, merged.ok ? '' : merged.issues.map(formatIssue).join('\n'));
      const loaded = loadWithPlaceholders(merged.text);
      assert.ok(loaded.ok && Object.keys(loaded.value.config.servers).length === imported.servers.length);
    }
  });

  it('refuses a result berth would not load', () => {
    const { imported: perUser } = importFixture('vscode/.vscode/mcp.json').outcome;
    // fromUser credentials need an auth provider, which BASE lacks.
    const merged = mergeInto('berth.yaml', BASE, perUser.servers);
    assert.ok(!merged.ok);
    assert.ok(merged.issues.some((i) => i.code === 'credential_unreachable'));
  });
});

describe('berth import: any input', () => {
  it('reports bad shapes as issues and never throws, in every format', () => {
    const value = fc.jsonValue({ maxDepth: 4 });
    const entry = fc.oneof(value, fc.dictionary(fc.constantFrom('command', 'args', 'env', 'url', 'type', 'headers', 'serverUrl', 'httpUrl', 'cwd', 'env_vars', 'bearer_token_env_var', 'http_headers', 'env_http_headers'), value));
    const registryEntry = fc.dictionary(fc.constantFrom('name', 'packages', 'remotes', 'description', 'server'), fc.oneof(fc.string(), fc.array(fc.dictionary(fc.constantFrom('registryType', 'identifier', 'version', 'transport', 'runtimeArguments', 'packageArguments', 'environmentVariables', 'url', 'headers', 'variables', 'type'), value), { maxLength: 3 }), value));
    const doc = fc.oneof(
      fc.record({ mcpServers: fc.dictionary(fc.string(), entry) }),
      fc.record({ servers: fc.dictionary(fc.string(), entry), inputs: value }),
      fc.record({ mcp_servers: fc.dictionary(fc.string(), entry) }),
      fc.record({ servers: fc.array(registryEntry, { maxLength: 3 }) }),
      registryEntry,
      value,
    );
    fc.assert(
      fc.property(doc, fc.constantFrom(...FORMATS.map((f) => f.id)), (data, format) => {
        const { imported, issues } = importClientConfig('any.json', JSON.stringify(data), { format, secrets: 'auto' });
        for (const issue of issues) assert.ok(issue.line >= 1 && issue.col >= 1, formatIssue(issue));
        renderFragment(imported, 'any.json', format);
      }),
      { numRuns: 400 },
    );
  });
});
