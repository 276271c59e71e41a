import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import type { ToStringOptions } from 'yaml';
import { CORE_TAGS, parseFast } from '../../src/config/fast-parse.ts';
import type { InterpolationContext } from '../../src/config/interpolate.ts';
import { ConfigError } from '../../src/config/issues.ts';
import { loadConfigFile, parseConfig, parseConfigFast, parseConfigWithPositions } from '../../src/config/load.ts';
import { parseSource } from '../../src/config/source.ts';
import { FIXTURE_ENV } from '../helpers/fixture-env.ts';

// The fast path (js-yaml, no positions) must read every text exactly as the
// yaml path does, or give up. Two properties, over the fixtures, the example
// configs and generated texts:
// 1. parseFast either gives up, or yaml reads the same text with no issue at
//    all, to the same data, with the same interpolation sites;
// 2. parseConfig (fast path first) answers exactly what the yaml path alone
//    answers: the same config, or the same issues at the same positions.

const root = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE_DIRS = ['test/fixtures/valid', 'test/fixtures/invalid'];
const ENV = FIXTURE_ENV;
const ctx: InterpolationContext = {
  env: ENV,
  readFile: (p) => readFileSync(path.join(root, 'test/fixtures/valid', path.relative('/virtual', p)), 'utf8'),
  baseDir: '/virtual',
};

/** Every config text the repository holds: fixtures, examples, the example config. */
function corpus(): { name: string; text: string }[] {
  const files = [
    ...FIXTURE_DIRS.flatMap((dir) =>
      readdirSync(path.join(root, dir))
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => path.join(dir, f)),
    ),
    ...readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => path.join('examples', f)),
    'config.example.yaml',
  ];
  return files.map((name) => ({ name, text: readFileSync(path.join(root, name), 'utf8') }));
}
const CORPUS = corpus();

/** The files yaml alone reads, and why: every other file must take the fast path. */
const YAML_ONLY: Readonly<Record<string, string>> = {
  'test/fixtures/valid/remote-and-composite.yaml': 'anchors and aliases',
  'test/fixtures/invalid/not-a-mapping-empty.yaml': 'no document',
  'test/fixtures/invalid/yaml-alias-bomb.yaml': 'anchors and aliases',
  'test/fixtures/invalid/yaml-unknown-alias.yaml': 'an alias',
  'test/fixtures/invalid/yaml-duplicate-key.yaml': 'a duplicate key',
  'test/fixtures/invalid/yaml-duplicate-key-flow.yaml': 'a duplicate key',
  'test/fixtures/invalid/yaml-syntax-bad-indent.yaml': 'a syntax error',
  'test/fixtures/invalid/yaml-syntax-unclosed-flow.yaml': 'a syntax error',
  'test/fixtures/invalid/yaml-syntax-unclosed-quote.yaml': 'a syntax error',
};

/** More generated cases: `BERTH_FAST_PATH_RUNS=50 node --test test/unit/config-fast-path.test.ts`. */
const RUNS = Math.max(1, Number(process.env['BERTH_FAST_PATH_RUNS'] ?? 1) || 1);

/** Property 1 for one text; says which way it went. */
function sameReading(text: string): 'fast' | 'yaml' {
  const fast = parseFast(text);
  if (fast === undefined) return 'yaml';
  const { source, issues } = parseSource('t.yaml', text);
  assert.deepEqual(issues, [], `the fast path read a text yaml has issues with: ${JSON.stringify(text)}`);
  assert.deepEqual(fast.data, source.doc.toJS({ maxAliasCount: 100 }), `different data for ${JSON.stringify(text)}`);
  const sites = (list: readonly (readonly unknown[])[]): string[] => list.map((s) => JSON.stringify(s)).sort();
  assert.deepEqual(
    sites(fast.sites.map((s) => [s.path, s.value, s.plain])),
    sites(source.references.map((r) => [r.path, r.node.value, r.node.type === 'PLAIN'])),
    `different interpolation sites for ${JSON.stringify(text)}`,
  );
  return 'fast';
}

/** Property 2 for one text. */
function sameResult(text: string): boolean {
  const both = parseConfig('t.yaml', text, ctx);
  assert.deepEqual(both, parseConfigWithPositions('t.yaml', text, ctx), `different results for ${JSON.stringify(text)}`);
  return both.ok;
}

// Text that changes how YAML reads a line, and scalars that mean different
// things in YAML 1.1 and 1.2 or that only some parsers resolve.
const SNIPPETS = [
  ' ', '  ', '\t', '\n', '\n  ', '\r\n', ':', ': ', '#', ' #', '-', '- ', '"', "'", '&a ', '*a', '!!str ', '!x ', '|', '>', '|-', '>+', '|2',
  '{', '}', '[', ']', ',', '?', '? ', '%', '@', '`', '\\', '$', '${env:BERTH_TEST_PORT}', '$${', '${env:NOPE}', '---\n', '...\n', '~', 'null',
  'Null', 'yes', 'no', 'on', 'off', 'y', 'n', '0755', '0o17', '0x1F', '0b11', '1e3', '1E+3', '.5', '5.', '.inf', '-.Inf', '.nan', '2001-12-14',
  '2001-12-14t21:59:43.10-05:00', '1_000', '+1', '-0', '0.0', '12:30', '"\\u0041"', '"\\x41\\N\\_"', "''", '\u00e9', '\u2028', '\ufeff', '\u0085',
  'true', 'True', 'TRUE', 'False', '<<', '__proto__', 'constructor', 'x'.repeat(300),
];

const mutated = fc
  .record({
    base: fc.constantFrom(...CORPUS.map((c) => c.text)),
    edits: fc.array(fc.tuple(fc.nat(), fc.constantFrom(...SNIPPETS), fc.nat({ max: 3 })), { minLength: 1, maxLength: 3 }),
  })
  .map(({ base, edits }) => {
    let text = base;
    for (const [at, insert, remove] of edits) {
      const i = at % (text.length + 1);
      text = text.slice(0, i) + insert + text.slice(i + remove);
    }
    return text;
  });

const tricky = fc.oneof(fc.constantFrom(...SNIPPETS.map((s) => s.trim())), fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }));
const scalar = fc.oneof(tricky, fc.double(), fc.integer(), fc.boolean(), fc.constant(null));
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(tricky, tie('node'), { maxKeys: 4 })),
})).node;
const styles: fc.Arbitrary<ToStringOptions> = fc.record({
  defaultStringType: fc.constantFrom('PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE', 'BLOCK_LITERAL', 'BLOCK_FOLDED'),
  defaultKeyType: fc.constantFrom(null, 'PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE'),
  collectionStyle: fc.constantFrom('any', 'block', 'flow'),
  indent: fc.integer({ min: 1, max: 4 }),
  indentSeq: fc.boolean(),
  lineWidth: fc.constantFrom(0, 12, 40, 80),
  minContentWidth: fc.constantFrom(0, 5, 20),
  doubleQuotedAsJSON: fc.boolean(),
  singleQuote: fc.constantFrom(null, true, false),
}) as fc.Arbitrary<ToStringOptions>;

test('the fixtures, examples and example config read the same on both paths', () => {
  const yamlOnly: string[] = [];
  for (const { name, text } of CORPUS) {
    if (sameReading(text) === 'yaml') yamlOnly.push(name);
    sameResult(text);
  }
  assert.deepEqual(yamlOnly.sort(), Object.keys(YAML_ONLY).sort(), 'the fast path must have been taken on every other file');
});

test('a config that is fine loads on the fast path itself, to the same config; one with issues never does', () => {
  let loaded = 0;
  for (const { name, text } of CORPUS.filter((c) => YAML_ONLY[c.name] === undefined)) {
    const fast = parseConfigFast(name, text, ctx);
    const full = parseConfigWithPositions(name, text, ctx);
    if (!full.ok) {
      assert.equal(fast, undefined, `${name} has issues, yet the fast path loaded it`);
      continue;
    }
    assert.ok(fast !== undefined, `${name} fell back`);
    assert.deepEqual(fast.config, full.value.config, name);
    loaded++;
  }
  assert.ok(loaded >= 13, `only ${loaded} configs loaded`);
});

test('what the fast path does not read like yaml goes to yaml', () => {
  const yamlOnly = [
    'a: &x 1\nb: *x', // anchors and aliases
    'a: !!str 1', // tags
    '%YAML 1.1\n---\na: yes', // directives
    'a: 1\n---\nb: 2', // several documents
    '', // none
    '1: a', // keys that are not strings
    '~: a',
    ': a',
    '? [a]\n: b',
    '<<: {a: 1}', // merge keys
    'a: 1\na: 2', // duplicate keys
    `${'k'.repeat(1100)}: 1`, // over yaml's 1,024-character implicit key
    'a: b #c\nd: "e"#f', // a syntax error
    `${'[ '.repeat(120)}${' ]'.repeat(120)}`, // deeper than js-yaml's 100
    // Where generated cases found the two libraries to differ:
    '...\nversion: 1\n', // a document end marker before the document (yaml: two documents)
    '|1-\n !\n', // an indentation indicator (js-yaml ' !', yaml '!')
    'a: >2\n   x\n',
    '\tFalse', // a tab (yaml: an error)
    ' # x\n\ufeffa: 1\n', // a byte order mark after a comment (yaml drops it)
    'a: b\rc: d\n', // a carriage return alone
    '    ---\n', // an indented `---` (js-yaml: a document start, yaml: text)
    '"a \\\n\n  b"', // an escaped line break before an empty line (the two read it differently)
  ];
  for (const text of yamlOnly) assert.equal(parseFast(text), undefined, JSON.stringify(text));
  for (const text of yamlOnly) sameResult(text);
  // YAML 1.2 core, as yaml resolves it: not YAML 1.1.
  assert.deepEqual(parseFast('a: yes\nb: on\nc: 0755\nd: .inf\ne: 2001-12-14\nf: 0o17\ng: 1_000\nh: .NaN\ni: 0x1F\nj: ~\nk:\n')?.data, {
    a: 'yes', b: 'on', c: 755, d: Infinity, e: '2001-12-14', f: 15, g: '1_000', h: Number.NaN, i: 31, j: null, k: null,
  });
});

test("yaml's core schema is what the fast path resolves plain scalars with", () => {
  // A yaml upgrade that changes its core tags must be looked at: CORE_FIRST in fast-parse.ts lists their first characters.
  assert.deepEqual(
    CORE_TAGS.map((t) => t.test?.source),
    ['^(?:~|[Nn]ull|NULL)?$', '^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$', '^0o[0-7]+$', '^[-+]?[0-9]+$', '^0x[0-9a-fA-F]+$', '^(?:[-+]?\\.(?:inf|Inf|INF)|\\.nan|\\.NaN|\\.NAN)$', '^[-+]?(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)[eE][-+]?[0-9]+$', '^[-+]?(?:\\.[0-9]+|[0-9]+\\.[0-9]*)$'],
  );
});

test('an alias bomb on the fast path falls back and is refused as before', () => {
  const bomb = `version: 1\na: &a ["x","x","x","x","x","x","x","x","x"]\n${['b', 'c', 'd', 'e', 'f', 'g'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`).join('\n')}\nservers: {}\n`;
  assert.equal(parseFast(bomb), undefined);
  const result = parseConfig('bomb.yaml', bomb, ctx);
  assert.ok(!result.ok);
  assert.match(result.issues.map((i) => i.message).join('\n'), /too many alias expansions/);
});

test('the size cap holds before either path parses', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-fast-'));
  try {
    const file = path.join(dir, 'berth.yaml');
    writeFileSync(file, 'version: 1\nservers: {}\n'.padEnd(200, '#'));
    assert.throws(() => loadConfigFile(file, { BERTH_CONFIG_MAX_BYTES: '100' }), (err) => err instanceof ConfigError && err.issues[0]?.code === 'config_too_large');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mutated configs read the same on both paths', () => {
  fc.assert(
    fc.property(mutated, (text) => {
      sameReading(text);
      sameResult(text);
    }),
    { numRuns: 300 * RUNS },
  );
});

test('generated YAML in every style reads the same on both paths', () => {
  fc.assert(
    fc.property(value, styles, (data, options) => {
      sameReading(stringify(data, options));
    }),
    { numRuns: 500 * RUNS },
  );
});

// Lines of YAML-like tokens: indentation, sequence dashes, keys, values, comments, in any order.
const lines = fc
  .array(
    fc.tuple(
      fc.constantFrom('', ' ', '  ', '   ', '    ', '\t', '  \t'),
      fc.constantFrom('', '- ', '-\t', '- - ', '? '),
      fc.constantFrom('', 'a:', 'b: ', 'a: ', '"k": ', "'k':", 'k :', '{a: 1}: ', 'x y: ', ': '),
      fc.oneof(fc.constantFrom(...SNIPPETS), tricky),
      fc.constantFrom('', ' # c', '#c', ' ', '\t'),
    ),
    { minLength: 1, maxLength: 8 },
  )
  .chain((rows) => fc.constantFrom('\n', '\r\n').map((eol) => rows.map((r) => r.join('')).join(eol)));

test('YAML-like lines read the same on both paths, or go to yaml', () => {
  fc.assert(
    fc.property(lines, (text) => {
      sameReading(text);
    }),
    { numRuns: 800 * RUNS },
  );
});

test('valid configs restyled and with tricky strings load the same on both paths', () => {
  const valid = CORPUS.filter((c) => c.name.startsWith('test/fixtures/valid/')).map((c) => parse(c.text) as Record<string, unknown>);
  fc.assert(
    fc.property(fc.constantFrom(...valid), styles, tricky, (config, options, description) => {
      const servers = Object.fromEntries(Object.entries(config['servers'] as Record<string, Record<string, unknown>>).map(([k, v]) => [k, { ...v, description }]));
      const text = stringify({ ...config, servers }, options);
      sameReading(text);
      sameResult(text);
    }),
    { numRuns: 150 * RUNS },
  );
});
