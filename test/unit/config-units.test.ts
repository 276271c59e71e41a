import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InterpolationContext } from '../../src/config/interpolate.ts';
import { interpolate } from '../../src/config/interpolate.ts';
import type { ConfigIssue, KeyPath } from '../../src/config/issues.ts';
import { formatIssue, formatKeyPath, sortIssues } from '../../src/config/issues.ts';
import { suggest } from '../../src/config/schema.ts';
import { parseSource } from '../../src/config/source.ts';
import { parseDuration, parseQuantity } from '../../src/config/units.ts';

/** A reader over an in-memory file tree; a missing file fails like fs does. */
function memoryFiles(files: Readonly<Record<string, string>>): { readFile: (p: string) => string; reads: string[] } {
  const reads: string[] = [];
  const readFile = (p: string): string => {
    reads.push(p);
    const text = files[p];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    return text;
  };
  return { readFile, reads };
}

function run(yaml: string, env: Readonly<Record<string, string>> = {}, files: Readonly<Record<string, string>> = {}): { value: unknown; issues: string[]; reads: string[] } {
  const { source, issues: syntax } = parseSource('t.yaml', yaml);
  assert.deepEqual(syntax, [], 'the test YAML itself parses');
  const { readFile, reads } = memoryFiles(files);
  const ctx: InterpolationContext = { env, readFile, baseDir: '/cfg' };
  const issues = interpolate(source, ctx);
  return { value: source.doc.toJS(), issues: sortIssues(issues).map(formatIssue), reads };
}

interface ExpandCase {
  readonly name: string;
  readonly yaml: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly files?: Readonly<Record<string, string>>;
  readonly want: unknown;
  readonly reads?: readonly string[];
}

const expandCases: readonly ExpandCase[] = [
  { name: 'env reference', yaml: 'a: ${env:NAME}', env: { NAME: 'alice' }, want: { a: 'alice' } },
  { name: 'env reference inside text', yaml: 'a: hello ${env:NAME}!', env: { NAME: 'alice' }, want: { a: 'hello alice!' } },
  { name: 'several references in one value', yaml: 'a: ${env:A}-${env:B}', env: { A: '1', B: '2' }, want: { a: '1-2' } },
  { name: 'default when unset', yaml: 'a: ${env:NOPE:-fallback}', want: { a: 'fallback' } },
  { name: 'default when set but empty', yaml: 'a: ${env:EMPTY:-fallback}', env: { EMPTY: '' }, want: { a: 'fallback' } },
  { name: 'default ignored when set', yaml: 'a: ${env:NAME:-fallback}', env: { NAME: 'alice' }, want: { a: 'alice' } },
  { name: 'empty default', yaml: 'a: "x${env:NOPE:-}y"', want: { a: 'xy' } },
  { name: 'default keeps colons and dashes', yaml: 'a: ${env:NOPE:-http://h:1/-x}', want: { a: 'http://h:1/-x' } },
  { name: 'env value is not expanded again', yaml: 'a: ${env:NAME}', env: { NAME: '${env:OTHER}' }, want: { a: '${env:OTHER}' } },
  {
    name: 'file relative to baseDir, trailing newline dropped',
    yaml: 'a: ${file:secrets/key.txt}',
    files: { '/cfg/secrets/key.txt': 's3cret\n' },
    want: { a: 's3cret' },
    reads: ['/cfg/secrets/key.txt'],
  },
  { name: 'file with an absolute path', yaml: 'a: ${file:/etc/berth/key}', files: { '/etc/berth/key': 'k' }, want: { a: 'k' }, reads: ['/etc/berth/key'] },
  { name: 'file going up from baseDir', yaml: 'a: ${file:../key}', files: { '/key': 'up' }, want: { a: 'up' }, reads: ['/key'] },
  { name: 'only one trailing newline dropped', yaml: 'a: ${file:k}', files: { '/cfg/k': 'x\n\n' }, want: { a: 'x\n' } },
  { name: 'a CRLF line end dropped', yaml: 'a: ${file:k}', files: { '/cfg/k': 'x\r\n' }, want: { a: 'x' } },
  { name: 'multi-line file content kept as is', yaml: 'a: ${file:k}', files: { '/cfg/k': 'one\ntwo\n' }, want: { a: 'one\ntwo' } },
  { name: '$${ is a literal ${', yaml: 'a: $${env:NAME}', env: { NAME: 'alice' }, want: { a: '${env:NAME}' } },
  { name: '$${ beside a reference', yaml: 'a: $${x}-${env:NAME}', env: { NAME: 'alice' }, want: { a: '${x}-alice' } },
  { name: 'a lone $ is kept', yaml: 'a: costs $5 and $$6', want: { a: 'costs $5 and $$6' } },
  { name: 'plain whole reference to an integer becomes a number', yaml: 'a: ${env:PORT}', env: { PORT: '8080' }, want: { a: 8080 } },
  { name: 'plain whole reference to a decimal becomes a number', yaml: 'a: ${env:CPU}', env: { CPU: '0.5' }, want: { a: 0.5 } },
  { name: 'plain whole reference to a negative number', yaml: 'a: ${env:N}', env: { N: '-3' }, want: { a: -3 } },
  { name: 'plain whole reference to true becomes a boolean', yaml: 'a: ${env:FLAG}', env: { FLAG: 'true' }, want: { a: true } },
  { name: 'plain whole reference to false becomes a boolean', yaml: 'a: ${env:FLAG}', env: { FLAG: 'false' }, want: { a: false } },
  { name: 'plain whole default becomes a number', yaml: 'a: ${env:NOPE:-8080}', want: { a: 8080 } },
  { name: 'plain whole file reference becomes a number', yaml: 'a: ${file:n}', files: { '/cfg/n': '42\n' }, want: { a: 42 } },
  { name: 'double-quoted reference stays a string', yaml: 'a: "${env:PORT}"', env: { PORT: '8080' }, want: { a: '8080' } },
  { name: 'single-quoted reference stays a string', yaml: "a: '${env:FLAG}'", env: { FLAG: 'true' }, want: { a: 'true' } },
  { name: 'block scalar stays a string', yaml: 'a: |-\n  ${env:PORT}', env: { PORT: '8080' }, want: { a: '8080' } },
  { name: 'reference with text around stays a string', yaml: 'a: ${env:PORT}0', env: { PORT: '8080' }, want: { a: '80800' } },
  { name: 'leading zeros stay a string', yaml: 'a: ${env:PIN}', env: { PIN: '0123' }, want: { a: '0123' } },
  { name: 'exponent notation stays a string', yaml: 'a: ${env:V}', env: { V: '1e3' }, want: { a: '1e3' } },
  { name: 'hex stays a string', yaml: 'a: ${env:V}', env: { V: '0x1F' }, want: { a: '0x1F' } },
  { name: 'YAML-looking secret stays as written', yaml: 'a: ${env:S}', env: { S: '{s3cr#t' }, want: { a: '{s3cr#t' } },
  { name: 'comment-looking text is not cut', yaml: 'a: ${env:S}', env: { S: 'pass # word' }, want: { a: 'pass # word' } },
  { name: 'null-looking text stays a string', yaml: 'a: ${env:S}', env: { S: 'null' }, want: { a: 'null' } },
  { name: 'capitalised True stays a string', yaml: 'a: ${env:S}', env: { S: 'True' }, want: { a: 'True' } },
  { name: 'list items and nested maps', yaml: 'a:\n  - ${env:X}\n  - b: ${env:X}', env: { X: 'x' }, want: { a: ['x', { b: 'x' }] } },
  { name: 'keys are not interpolated', yaml: '${env:X}: 1', env: { X: 'x' }, want: { '${env:X}': 1 } },
  { name: 'non-string scalars untouched', yaml: 'a: 1\nb: true\nc: null', want: { a: 1, b: true, c: null } },
];

test('interpolate expands references', async (t) => {
  for (const c of expandCases) {
    await t.test(c.name, () => {
      const got = run(c.yaml, c.env, c.files);
      assert.deepEqual(got.issues, []);
      assert.deepEqual(got.value, c.want);
      if (c.reads !== undefined) assert.deepEqual(got.reads, c.reads);
    });
  }
});

interface FailCase {
  readonly name: string;
  readonly yaml: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly readFile?: (p: string) => string;
  readonly issues: readonly string[];
  readonly want?: unknown;
}

const failCases: readonly FailCase[] = [
  {
    name: 'missing env var, at the value position, value left as written',
    yaml: 'x: 1\nsrv:\n  url: http://${env:HOST}/mcp',
    issues: ['t.yaml:3:8 srv.url: environment variable HOST is not set (set HOST, or give a default: ${env:HOST:-value})'],
    want: { x: 1, srv: { url: 'http://${env:HOST}/mcp' } },
  },
  {
    name: 'empty env var without default',
    yaml: 'a: ${env:EMPTY}',
    env: { EMPTY: '' },
    issues: ['t.yaml:1:4 a: environment variable EMPTY is not set (set EMPTY, or give a default: ${env:EMPTY:-value})'],
  },
  {
    name: 'every failing reference in one value',
    yaml: 'a: ${env:A}${env:B}',
    issues: [
      't.yaml:1:4 a: environment variable A is not set (set A, or give a default: ${env:A:-value})',
      't.yaml:1:4 a: environment variable B is not set (set B, or give a default: ${env:B:-value})',
    ],
  },
  {
    name: 'list item path and position',
    yaml: 'a:\n  - ok\n  - ${env:NOPE}',
    issues: ['t.yaml:3:5 a[1]: environment variable NOPE is not set (set NOPE, or give a default: ${env:NOPE:-value})'],
  },
  {
    name: 'flow mapping in a list',
    yaml: 'a: [{ b: "${env:NOPE}" }]',
    issues: ['t.yaml:1:10 a[0].b: environment variable NOPE is not set (set NOPE, or give a default: ${env:NOPE:-value})'],
  },
  {
    name: 'unreadable file names the absolute path and the reason',
    yaml: 'a: ${file:secrets/k}',
    issues: ['t.yaml:1:4 a: cannot read /cfg/secrets/k for ${file:secrets/k} (ENOENT) (paths are relative to the config file)'],
  },
  {
    name: 'a reader error without a code',
    yaml: 'a: ${file:k}',
    readFile: () => {
      throw new Error('boom');
    },
    issues: ['t.yaml:1:4 a: cannot read /cfg/k for ${file:k} (unreadable) (paths are relative to the config file)'],
  },
  {
    name: 'unknown scheme',
    yaml: 'a: ${vault:kv/token}',
    issues: ['t.yaml:1:4 a: unknown reference ${vault:kv/token} (use ${env:NAME} or ${file:path}; write $${ for a literal ${)'],
  },
  {
    name: 'no scheme',
    yaml: 'a: ${HOME}',
    env: { HOME: '/root' },
    issues: ['t.yaml:1:4 a: unknown reference ${HOME} (use ${env:NAME} or ${file:path}; write $${ for a literal ${)'],
  },
  {
    name: 'unterminated reference',
    yaml: 'a:\n  b: "x ${env:HOME"',
    env: { HOME: '/root' },
    issues: ['t.yaml:2:6 a.b: unterminated `${` in "x ${env:HOME" (close it with `}`, or write `$${` for a literal `${`)'],
    want: { a: { b: 'x ${env:HOME' } },
  },
  {
    name: 'a good reference is still expanded beside a bad one',
    yaml: 'a: ${env:OK}\nb: ${env:NOPE}',
    env: { OK: 'fine' },
    issues: ['t.yaml:2:4 b: environment variable NOPE is not set (set NOPE, or give a default: ${env:NOPE:-value})'],
    want: { a: 'fine', b: '${env:NOPE}' },
  },
];

test('interpolate reports failures with positions', async (t) => {
  for (const c of failCases) {
    await t.test(c.name, () => {
      const { source } = parseSource('t.yaml', c.yaml);
      const ctx: InterpolationContext = { env: c.env ?? {}, readFile: c.readFile ?? memoryFiles({}).readFile, baseDir: '/cfg' };
      const issues: ConfigIssue[] = interpolate(source, ctx);
      assert.deepEqual(sortIssues(issues).map(formatIssue), c.issues);
      for (const issue of issues) assert.match(issue.code, /^interpolation_/);
      if (c.want !== undefined) assert.deepEqual(source.doc.toJS(), c.want);
    });
  }
});

test('parseSource gives process.env back, even when yaml throws', () => {
  const env = process.env;
  parseSource('t.yaml', 'a: 1\n');
  assert.equal(process.env, env, 'the real process.env after a parse');
  assert.throws(() => parseSource('t.yaml', 42 as unknown as string));
  assert.equal(process.env, env, 'the real process.env after a failed parse');
});

test('parseDuration', async (t) => {
  const cases: readonly [string, number | undefined][] = [
    ['30s', 30_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['1.5h', 5_400_000],
    ['2d', 172_800_000],
    ['500ms', 500],
    ['0s', 0],
    [' 10s ', 10_000],
    ['10 s', 10_000],
    ['15', undefined],
    ['1w', undefined],
    ['1y', undefined],
    ['', undefined],
    ['-1s', undefined],
    ['1.5.2s', undefined],
    ['15 minutes', undefined],
    ['1S', undefined],
    ['s', undefined],
  ];
  for (const [text, want] of cases) {
    await t.test(JSON.stringify(text), () => assert.equal(parseDuration(text), want));
  }
});

test('parseQuantity', async (t) => {
  const cases: readonly [string | number, number | undefined][] = [
    ['500m', 0.5],
    ['250m', 0.25],
    ['0.5', 0.5],
    ['.5', 0.5],
    ['5.', 5],
    ['2', 2],
    ['1k', 1000],
    ['1M', 1e6],
    ['512M', 512e6],
    ['1G', 1e9],
    ['1Ki', 1024],
    ['256Mi', 256 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['2Ti', 2 * 2 ** 40],
    ['1e3', 1000],
    ['1E3', 1000],
    ['5e-1', 0.5],
    [' 1Gi ', 2 ** 30],
    [2, 2],
    [0.5, 0.5],
    [0, 0],
    [-1, undefined],
    [Number.NaN, undefined],
    [Number.POSITIVE_INFINITY, undefined],
    ['', undefined],
    ['-1', undefined],
    ['-250m', undefined],
    ['256MB', undefined],
    ['1K', undefined],
    ['1e3m', undefined],
    ['half', undefined],
    ['1 Gi', undefined],
  ];
  for (const [text, want] of cases) {
    await t.test(JSON.stringify(text) ?? String(text), () => assert.equal(parseQuantity(text), want));
  }
});

test('suggest', async (t) => {
  const cases: readonly [string, readonly string[], string | undefined][] = [
    ['runtim', ['type', 'runtime', 'package'], 'did you mean `runtime`?'],
    ['pakage', ['type', 'runtime', 'package'], 'did you mean `package`?'],
    ['netwrok', ['socket', 'network'], 'did you mean `network`?'],
    ['apikey', ['none', 'apiKey', 'jwt', 'header'], 'did you mean `apiKey`?'],
    ['multiuser', ['single-user', 'multi-user'], 'did you mean `multi-user`?'],
    ['npm', ['npx', 'uvx', 'command'], 'did you mean `npx`?'],
    ['everythin', ['everything', 'github'], 'did you mean `everything`?'],
    // Levenshtein counts a swap of two letters as two edits, too many for a short word.
    ['prot', ['host', 'port'], undefined],
    ['telemetry', ['version', 'listen', 'servers'], undefined],
    ['websocket', ['streamable-http', 'sse'], undefined],
    ['x', [], undefined],
  ];
  for (const [word, known, want] of cases) {
    await t.test(`${word} among [${known.join(', ')}]`, () => assert.equal(suggest(word, known), want));
  }
});

test('formatKeyPath', async (t) => {
  const cases: readonly [KeyPath, string][] = [
    [[], ''],
    [['servers'], 'servers'],
    [['servers', 'github', 'env', 'TOKEN'], 'servers.github.env.TOKEN'],
    [['servers', 'tools', 'args', 2], 'servers.tools.args[2]'],
    [['auth', 0, 'keys', 1, 'sha256'], 'auth[0].keys[1].sha256'],
    [[0, 'a'], '[0].a'],
    [['servers', 'search', 'headers', 'X Tenant'], 'servers.search.headers["X Tenant"]'],
    [['env', 'MY-VAR_2'], 'env.MY-VAR_2'],
    [['a.b'], '["a.b"]'],
    [['headers', 'say "hi"'], 'headers["say \\"hi\\""]'],
  ];
  for (const [path, want] of cases) {
    await t.test(want === '' ? '(empty)' : want, () => assert.equal(formatKeyPath(path), want));
  }
});

test('formatIssue', async (t) => {
  const base = { code: 'wrong_type', file: 'berth.yaml', line: 14, col: 7 } as const;
  const cases: readonly [ConfigIssue, string][] = [
    [{ ...base, path: 'servers.github.env.TOKEN', message: 'must be a string' }, 'berth.yaml:14:7 servers.github.env.TOKEN: must be a string'],
    [{ ...base, path: '', message: 'missing required key `servers`' }, 'berth.yaml:14:7 missing required key `servers`'],
    [{ ...base, path: 'listn', message: 'unknown key `listn`', hint: 'did you mean `listen`?' }, 'berth.yaml:14:7 listn: unknown key `listn` (did you mean `listen`?)'],
  ];
  for (const [issue, want] of cases) {
    await t.test(want, () => assert.equal(formatIssue(issue), want));
  }
});

test('sortIssues orders by file, line, column, then message', () => {
  const at = (file: string, line: number, col: number, message: string): ConfigIssue => ({ code: 'invalid_value', file, line, col, path: '', message });
  const issues = [at('b.yaml', 1, 1, 'a'), at('a.yaml', 2, 1, 'a'), at('a.yaml', 1, 5, 'a'), at('a.yaml', 1, 2, 'z'), at('a.yaml', 1, 2, 'b')];
  assert.deepEqual(
    sortIssues(issues).map(formatIssue),
    ['a.yaml:1:2 b', 'a.yaml:1:2 z', 'a.yaml:1:5 a', 'a.yaml:2:1 a', 'b.yaml:1:1 a'],
  );
  assert.equal(issues[0]?.file, 'b.yaml', 'the input is not reordered');
});
