import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { ParseResult } from '../../src/config/load.ts';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import type { ConfigIssue } from '../../src/config/issues.ts';
import { ConfigError, formatIssue, sortIssues } from '../../src/config/issues.ts';
import { configSchema } from '../../src/config/schema.ts';
import { FIXTURE_ENV } from '../helpers/fixture-env.ts';

// Golden config corpus: every `invalid/NAME.yaml` sits beside `NAME.expected`,
// the exact lines `berth validate` prints for it (sorted like ConfigError sorts
// them); every `valid/NAME.yaml` must load, and `valid/NAME.json`, where present,
// is the config it must load to.

const root = fileURLToPath(new URL('../../', import.meta.url));
const invalidDir = path.join(root, 'test/fixtures/invalid');
const validDir = path.join(root, 'test/fixtures/valid');

const ENV = FIXTURE_ENV;

/** `${file:…}` paths resolve against this fixed directory, so messages never show where the checkout lives. */
const VIRTUAL_DIR = '/berth-fixtures';

const MIN_INVALID_CASES = 45;

function fixtureNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

/** Parses a fixture the way `berth validate` would, with the fixed environment and file root. */
function parseFixture(dir: string, name: string): ParseResult {
  const file = `${name}.yaml`;
  const readFile = (absolute: string): string => {
    const relative = path.relative(VIRTUAL_DIR, absolute);
    if (relative.startsWith('..') || path.isAbsolute(relative)) {
      throw Object.assign(new Error(`outside the fixture directory: ${absolute}`), { code: 'EACCES' });
    }
    return readFileSync(path.join(dir, relative), 'utf8');
  };
  return parseConfig(file, readFileSync(path.join(dir, file), 'utf8'), { env: ENV, readFile, baseDir: VIRTUAL_DIR });
}

function issuesOf(result: ParseResult): readonly ConfigIssue[] {
  return result.ok ? [] : result.issues;
}

function expectedLines(name: string): string[] {
  const text = readFileSync(path.join(invalidDir, `${name}.expected`), 'utf8');
  assert.ok(text.endsWith('\n'), `${name}.expected must end with a newline`);
  return text.slice(0, -1).split('\n');
}

/** What a shipped config gets: its own directory for `${file:…}`, real files, the fixed environment. */
function parseShipped(relative: string): ParseResult {
  const file = path.join(root, relative);
  return parseConfig(relative, readFileSync(file, 'utf8'), { env: ENV, readFile: (p) => readFileSync(p, 'utf8'), baseDir: path.dirname(file) });
}

test('invalid configs report exactly the expected issues', async (t) => {
  for (const name of fixtureNames(invalidDir)) {
    await t.test(name, () => {
      const result = parseFixture(invalidDir, name);
      assert.equal(result.ok, false, `${name}.yaml should be rejected`);
      const issues = issuesOf(result);
      assert.deepEqual(sortIssues(issues).map(formatIssue), expectedLines(name));
      for (const issue of issues) {
        assert.match(issue.code, /^[a-z]+(_[a-z]+)+$/, `issue code ${issue.code} is a stable snake_case code`);
        assert.equal(issue.file, `${name}.yaml`);
      }
    });
  }
});

test('valid configs load', async (t) => {
  for (const name of fixtureNames(validDir)) {
    await t.test(name, () => {
      const result = parseFixture(validDir, name);
      assert.deepEqual(issuesOf(result).map(formatIssue), []);
      assert.ok(result.ok);
      const golden = path.join(validDir, `${name}.json`);
      if (existsSync(golden)) assert.deepEqual(result.value.config, JSON.parse(readFileSync(golden, 'utf8')));
      assert.ok(Object.isFrozen(result.value.config), 'a loaded config is frozen');
    });
  }
});

test('the corpus is complete', async (t) => {
  const names = fixtureNames(invalidDir);
  await t.test(`has at least ${MIN_INVALID_CASES} invalid cases`, () => {
    assert.ok(names.length >= MIN_INVALID_CASES, `only ${names.length} invalid fixtures`);
  });
  await t.test('pairs every invalid config with its .expected file', () => {
    const expected = readdirSync(invalidDir)
      .filter((f) => f.endsWith('.expected'))
      .map((f) => f.slice(0, -'.expected'.length))
      .sort();
    assert.deepEqual(expected, names);
  });
});

/** Every snake_case string literal in src/config but the schema's own enum values (`private_key_jwt`): the issue codes. */
function configCodesInSource(): Set<string> {
  const dir = path.join(root, 'src/config');
  const values = schemaEnumValues(configSchema);
  const codes = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.gen.ts'))) {
    for (const match of readFileSync(path.join(dir, file), 'utf8').matchAll(/'([a-z]+(?:_[a-z]+)+)'/g)) if (!values.has(match[1] ?? '')) codes.add(match[1] ?? '');
  }
  return codes;
}

function schemaEnumValues(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const item of node) schemaEnumValues(item, out);
  else if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'enum' && Array.isArray(value)) for (const v of value) out.add(String(v));
      else schemaEnumValues(value, out);
    }
  }
  return out;
}

/** Codes of `BerthError`s constructed with a literal code anywhere in src. */
function berthErrorCodesInSource(): Set<string> {
  const codes = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) {
        const text = readFileSync(full, 'utf8');
        for (const match of text.matchAll(/(?:new [A-Za-z]*Error|super)\(\s*'([a-z]+(?:_[a-z]+)+)'/g)) codes.add(match[1] ?? '');
      }
    }
  };
  walk(path.join(root, 'src'));
  return codes;
}

/** Codes only `loadConfigFile` produces: an unreadable or too large file, and the error wrapping every issue. */
function loadConfigFileCodes(): Set<string> {
  const codes = new Set<string>();
  const tooSmall = { ...ENV, BERTH_CONFIG_MAX_BYTES: '16' };
  for (const [file, env] of [[path.join(invalidDir, 'no-such-file.yaml'), ENV], [path.join(invalidDir, 'several-schema-errors.yaml'), ENV], [path.join(invalidDir, 'several-schema-errors.yaml'), tooSmall]] as const) {
    try {
      loadConfigFile(file, env);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      codes.add(err.code);
      for (const issue of err.issues) codes.add(issue.code);
    }
  }
  return codes;
}

test('every issue code in src/config is produced by some fixture', () => {
  const inSource = configCodesInSource();
  assert.ok(inSource.size >= 25, `found only ${inSource.size} codes in src/config; has the code style changed?`);
  const seen = loadConfigFileCodes();
  for (const name of fixtureNames(invalidDir)) {
    for (const issue of issuesOf(parseFixture(invalidDir, name))) seen.add(issue.code);
  }
  const uncovered = [...inSource].filter((code) => !seen.has(code)).sort();
  assert.deepEqual(uncovered, [], 'add an invalid fixture that produces each of these codes');
  const unknown = [...seen].filter((code) => !inSource.has(code)).sort();
  assert.deepEqual(unknown, [], 'fixtures produced codes the source scan did not find');
});

test('docs/errors.md documents every error code', () => {
  const docs = readFileSync(path.join(root, 'docs/errors.md'), 'utf8');
  const codes = [...configCodesInSource(), ...berthErrorCodesInSource()];
  assert.ok(codes.includes('config_invalid'));
  const missing = codes.filter((code) => !docs.includes(`| \`${code}\` |`)).sort();
  assert.deepEqual(missing, [], 'add a table row for each code to docs/errors.md');
});

test('docs/errors.md shows config issue examples berth really prints', () => {
  // Examples whose text depends on where files are, or on their size: they are shown with realistic values instead.
  const pathDependent = new Set(['config_unreadable', 'config_too_large', 'interpolation_file_unreadable']);
  const printed = new Set<string>();
  for (const name of fixtureNames(invalidDir)) {
    for (const line of expectedLines(name)) printed.add(line.replace(`${name}.yaml:`, 'berth.yaml:').replaceAll('\\|', '|'));
  }
  const rows = [...readFileSync(path.join(root, 'docs/errors.md'), 'utf8').matchAll(/^\| `([a-z_]+)` \|.*\| `` (berth\.yaml:.*) `` \|$/gm)];
  assert.ok(rows.length >= 25, `found only ${rows.length} example rows`);
  for (const [, code = '', example = ''] of rows) {
    if (pathDependent.has(code)) continue;
    const unescaped = example.replaceAll('\\|', '|');
    assert.ok(printed.has(unescaped), `the ${code} example is not in any .expected file: ${unescaped}`);
  }
});

test('loadConfigFile', async (t) => {
  await t.test('reports an unreadable file as config_unreadable', () => {
    const file = path.join(invalidDir, 'no-such-file.yaml');
    assert.throws(
      () => loadConfigFile(file, ENV),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.code, 'config_invalid');
        assert.deepEqual(err.issues.map(formatIssue), [`${file}:1:1 cannot read the config file (ENOENT) (pass its path as the first argument, or set BERTH_CONFIG)`]);
        return true;
      },
    );
  });
  await t.test('throws every issue, sorted, in one ConfigError', () => {
    const name = 'several-semantic-errors';
    const file = path.join(invalidDir, `${name}.yaml`);
    assert.throws(
      () => loadConfigFile(file, ENV),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.code, 'config_invalid');
        assert.deepEqual(
          err.issues.map((issue) => formatIssue({ ...issue, file: `${name}.yaml` })),
          expectedLines(name),
        );
        assert.equal(err.message, err.issues.map(formatIssue).join('\n'));
        return true;
      },
    );
  });
  await t.test('resolves ${file:…} against the config file directory', () => {
    const loaded = loadConfigFile(path.join(validDir, 'local-hosted.yaml'), ENV);
    assert.equal(loaded.config.state?.key, readFileSync(path.join(validDir, 'secrets/state-key.txt'), 'utf8').replace(/\n$/, ''));
  });
});

test('shipped configs are valid', async (t) => {
  for (const relative of ['config.example.yaml', 'examples/all-kinds.yaml']) {
    await t.test(relative, () => {
      const result = parseShipped(relative);
      assert.deepEqual(issuesOf(result).map(formatIssue), []);
      assert.ok(readFileSync(path.join(root, relative), 'utf8').startsWith('# yaml-language-server: $schema='), 'the first line points editors at the schema');
    });
  }
});

type Schema = { readonly [key: string]: unknown };

const defs = (configSchema['$defs'] ?? {}) as Readonly<Record<string, Schema>>;

/** Follows a `$ref` into `$defs`; a definition is labelled by its name wherever it is used. */
function deref(schema: Schema, label: string): [Schema, string] {
  const ref = schema['$ref'];
  if (typeof ref !== 'string') return [schema, label];
  const name = ref.replace('#/$defs/', '');
  const target = defs[name];
  assert.ok(target !== undefined, `unresolved $ref ${ref}`);
  return [target, name];
}

function asSchema(value: unknown): Schema | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Schema) : undefined;
}

function jsonType(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'object' : typeof value;
}

/**
 * What a schema offers: `def.key` for every property, `def.key=value` for every
 * enum value, `def:type` for every form of a multi-type value.
 */
function offered(schema: Schema, label: string, out: Set<string>, visited = new Set<string>()): Set<string> {
  const [s, at] = deref(schema, label);
  if (visited.has(at)) return out;
  visited.add(at);
  if (Array.isArray(s['type'])) for (const t of s['type']) out.add(`${at}:${String(t)}`);
  if (Array.isArray(s['enum'])) for (const v of s['enum']) out.add(`${at}=${String(v)}`);
  for (const [key, child] of Object.entries(asSchema(s['properties']) ?? {})) {
    out.add(`${at}.${key}`);
    offered(child as Schema, `${at}.${key}`, out, visited);
  }
  const extra = asSchema(s['additionalProperties']);
  if (extra !== undefined) offered(extra, `${at}.*`, out, visited);
  const items = asSchema(s['items']);
  if (items !== undefined) offered(items, `${at}[]`, out, visited);
  return out;
}

/** The same labels, for what a config actually uses. */
function used(schema: Schema, label: string, data: unknown, out: Set<string>): Set<string> {
  const [s, at] = deref(schema, label);
  if (Array.isArray(s['type'])) out.add(`${at}:${jsonType(data)}`);
  if (Array.isArray(s['enum'])) out.add(`${at}=${String(data)}`);
  if (Array.isArray(data)) {
    const items = asSchema(s['items']);
    if (items !== undefined) for (const item of data) used(items, `${at}[]`, item, out);
  } else if (data !== null && typeof data === 'object') {
    const properties = asSchema(s['properties']) ?? {};
    const extra = asSchema(s['additionalProperties']);
    for (const [key, value] of Object.entries(data)) {
      const child = asSchema(properties[key]);
      if (child !== undefined) {
        out.add(`${at}.${key}`);
        used(child, `${at}.${key}`, value, out);
      } else if (extra !== undefined) {
        used(extra, `${at}.*`, value, out);
      }
    }
  }
  return out;
}

test('the valid fixtures together use every field, enum value and value form of the schema', () => {
  const all = offered(configSchema, 'root', new Set());
  assert.ok(all.has('server.type=composite') && all.has('credential:object') && all.has('component.tools.rename'), 'the schema walk finds nested fields');
  const seen = new Set<string>();
  for (const name of fixtureNames(validDir)) {
    const result = parseFixture(validDir, name);
    assert.ok(result.ok, `${name}.yaml is valid`);
    used(configSchema, 'root', result.value.config, seen);
  }
  const unused = [...all].filter((label) => !seen.has(label)).sort();
  assert.deepEqual(unused, [], 'add these to a valid fixture');
});
