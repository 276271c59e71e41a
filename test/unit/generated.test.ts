import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { renderConfigDocs } from '../../scripts/gen-config-docs.ts';
import { renderConfigTypes } from '../../scripts/gen-types.ts';

const read = (file: string): string => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
const schema = JSON.parse(read('schemas/berth.schema.json')) as Record<string, unknown>;

describe('files generated from schemas/berth.schema.json', () => {
  it('src/config/types.gen.ts is up to date', async () => {
    assert.ok(read('src/config/types.gen.ts') === (await renderConfigTypes()), 'src/config/types.gen.ts differs from what the schema generates: run `npm run gen`');
  });

  it('docs/config.md is up to date', () => {
    assert.ok(read('docs/config.md') === renderConfigDocs(), 'docs/config.md differs from what the schema generates: run `npm run gen`');
  });

  it('docs/config.md documents every key of the schema', () => {
    const docs = renderConfigDocs();
    for (const [where, key] of properties(schema)) assert.ok(docs.includes(`| \`${key}\``), `docs/config.md has no row for ${where}`);
  });
});

describe('schemas/berth.schema.json', () => {
  it('describes every property', () => {
    const missing = properties(schema)
      .filter(([, , prop]) => describedBy(prop) === undefined)
      .map(([where]) => where);
    assert.deepEqual(missing, [], 'every property needs a `description` (on it, or on the definition it refers to)');
  });

  it('has properties to check (the walk above finds them)', () => {
    const found = properties(schema).map(([where]) => where);
    for (const expected of ['properties.servers', '$defs.server.properties.env', '$defs.component.properties.tools.properties.rename']) assert.ok(found.includes(expected), expected);
  });
});

type Node = Record<string, unknown>;

/** [where, key, schema] for every entry of every `properties` in the schema, nested ones too. */
function properties(node: unknown, where = ''): [string, string, Node][] {
  if (node === null || typeof node !== 'object') return [];
  const out: [string, string, Node][] = [];
  for (const [key, child] of Object.entries(node as Node)) {
    const here = where === '' ? key : `${where}.${key}`;
    // An `if` names keys to test a condition, not properties of their own.
    if (key === 'if') continue;
    if (key === 'properties' && child !== null && typeof child === 'object') {
      for (const [name, prop] of Object.entries(child as Node)) {
        // `false` forbids a key under a condition; it is not a property of its own.
        if (prop === false) continue;
        out.push([`${here}.${name}`, name, prop as Node], ...properties(prop, `${here}.${name}`));
      }
    } else {
      out.push(...properties(child, here));
    }
  }
  return out;
}

/** A property's description: its own, or that of the definition it refers to. */
function describedBy(prop: Node): string | undefined {
  if (typeof prop['description'] === 'string' && prop['description'] !== '') return prop['description'];
  const ref = prop['$ref'];
  if (typeof ref !== 'string') return undefined;
  const target = ref
    .replace(/^#\//, '')
    .split('/')
    .reduce<unknown>((n, seg) => (n !== null && typeof n === 'object' ? (n as Node)[seg] : undefined), schema);
  return target !== null && typeof target === 'object' ? describedBy(target as Node) : undefined;
}
