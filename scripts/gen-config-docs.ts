// Generates docs/config.md from the schema, the contract: one section per
// object, a table of its keys. A test fails when the committed file drifts
// from it. Run: npm run gen
import { readFileSync, writeFileSync } from 'node:fs';

/** The part of JSON Schema the config schema uses. */
interface Schema {
  readonly $ref?: string;
  readonly title?: string;
  readonly description?: string;
  readonly type?: string | readonly string[];
  readonly const?: unknown;
  readonly enum?: readonly unknown[];
  readonly default?: unknown;
  readonly examples?: readonly unknown[];
  readonly format?: string;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly minItems?: number;
  readonly uniqueItems?: boolean;
  readonly required?: readonly string[];
  readonly properties?: Readonly<Record<string, Schema | boolean>>;
  readonly additionalProperties?: Schema | boolean;
  readonly propertyNames?: Schema;
  readonly items?: Schema;
  readonly allOf?: readonly Schema[];
  readonly oneOf?: readonly Schema[];
  readonly then?: Schema;
  readonly $defs?: Readonly<Record<string, Schema>>;
  readonly 'x-message'?: string;
}

const BANNER = '<!-- Generated from schemas/berth.schema.json by scripts/gen-config-docs.ts. Do not edit; run `npm run gen`. -->';

/** One documented object: a $def, the top level, or an inline object with keys (component.tools). */
interface Section {
  readonly id: string;
  readonly title: string;
  readonly schema: Schema;
  /** Where the object appears in a config file, e.g. `servers.<name>`. */
  readonly usedAt: string[];
}

export function loadSchema(): Schema {
  return JSON.parse(readFileSync(new URL('../schemas/berth.schema.json', import.meta.url), 'utf8')) as Schema;
}

/** docs/config.md as it should be for the current schema. */
export function renderConfigDocs(schema: Schema = loadSchema()): string {
  const sections = collectSections(schema);
  const out: string[] = [
    BANNER,
    '',
    '# Configuration reference',
    '',
    `${schema.description ?? ''} The contract is [\`schemas/berth.schema.json\`](../schemas/berth.schema.json) (JSON Schema 2020-12); this page is generated from it.`,
    '',
    'Any string value may use `${env:NAME}`, `${env:NAME:-default}` and `${file:path}` (relative to the config file); `$${` is a literal `${`. Secrets never need to be in the file.',
    '',
    '## Contents',
    '',
    ...sections.map((s) => `- [${s.title}](#${slug(s.title)})`),
  ];
  for (const section of sections) out.push('', ...renderSection(section, sections));
  return `${out.join('\n')}\n`;
}

/** The top level, then every $def in schema order, each followed by its inline sub-objects. */
function collectSections(schema: Schema): Section[] {
  const sections: Section[] = [{ id: '#', title: 'Top level', schema, usedAt: [] }];
  for (const [name, def] of Object.entries(schema.$defs ?? {})) {
    if (!isObjectSchema(def)) continue;
    sections.push({ id: `#/$defs/${name}`, title: words(name), schema: def, usedAt: [] });
    for (const [key, prop] of Object.entries(def.properties ?? {})) {
      if (typeof prop !== 'boolean' && prop.properties !== undefined) {
        sections.push({ id: `#/$defs/${name}/properties/${key}`, title: `${words(name)} ${key}`, schema: prop, usedAt: [] });
      }
    }
  }
  const byId = new Map(sections.map((s) => [s.id, s]));
  const walk = (node: Schema | boolean | undefined, id: string | undefined, path: string, seen: ReadonlySet<string>): void => {
    if (node === undefined || typeof node === 'boolean') return;
    if (node.$ref !== undefined) {
      if (seen.has(node.$ref)) return;
      walk(resolve(schema, node.$ref), node.$ref, path, new Set([...seen, node.$ref]));
      return;
    }
    const section = id === undefined ? undefined : byId.get(id);
    if (section !== undefined && path !== '' && !section.usedAt.includes(path)) section.usedAt.push(path);
    for (const [key, prop] of Object.entries(node.properties ?? {})) {
      walk(prop, id === undefined ? undefined : `${id}/properties/${key}`, path === '' ? key : `${path}.${key}`, seen);
    }
    if (node.items !== undefined) walk(node.items, undefined, `${path}[]`, seen);
    if (typeof node.additionalProperties === 'object') walk(node.additionalProperties, undefined, `${path}.${placeholder(path)}`, seen);
  };
  walk(schema, '#', '', new Set());
  return sections;
}

function renderSection(section: Section, sections: readonly Section[]): string[] {
  const { schema } = section;
  const lines = [`## ${section.title}`, ''];
  if (schema.description !== undefined) lines.push(text(schema.description), '');
  if (section.usedAt.length > 0) lines.push(`Used at: ${section.usedAt.map((p) => `\`${p}\``).join(', ')}.`, '');
  if (schema.type !== undefined && typeof schema.type !== 'string') lines.push(`Written as ${typeName(schema, sections)}; as an object it has these keys:`, '');
  const required = new Set(schema.required ?? []);
  lines.push('| key | type | default | description |', '|---|---|---|---|');
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (typeof prop === 'boolean') continue;
    const target = prop.$ref === undefined ? prop : { ...resolve(sections[0]?.schema ?? {}, prop.$ref), ...prop };
    const name = `\`${key}\`${required.has(key) ? ' **(required)**' : ''}`;
    const nested = sections.find((s) => s.id === `${section.id}/properties/${key}`);
    const type = nested === undefined ? typeName(prop, sections) : link(nested);
    lines.push(`| ${name} | ${type} | ${target.default === undefined ? '' : code(target.default)} | ${describe(target, prop.$ref !== undefined)} |`);
  }
  const rules = [...(schema.allOf ?? []).map((s) => s.then?.['x-message']), schema.oneOf === undefined ? undefined : schema['x-message']].filter(
    (m): m is string => m !== undefined,
  );
  const bullets = [...rules.map((r) => `${text(capitalize(r))}.`), ...keysNotApplicable(schema)];
  if (bullets.length > 0) lines.push('', 'Rules:', '', ...bullets.map((b) => `- ${b}`));
  if (schema.examples !== undefined) lines.push('', `Examples: ${schema.examples.map(code).join(', ')}.`);
  return lines;
}

/** "With `type: local`, these keys are not allowed: …" from `if`/`then` blocks that forbid keys. */
function keysNotApplicable(schema: Schema): string[] {
  const out: string[] = [];
  for (const rule of schema.allOf ?? []) {
    const forbidden = Object.entries(rule.then?.properties ?? {})
      .filter(([, s]) => s === false)
      .map(([k]) => `\`${k}\``);
    const condition = Object.entries((rule as { if?: Schema }).if?.properties ?? {})[0];
    if (forbidden.length === 0 || condition === undefined || typeof condition[1] === 'boolean') continue;
    const values = condition[1].const !== undefined ? [condition[1].const] : (condition[1].enum ?? []);
    out.push(`With ${values.map((v) => `\`${condition[0]}: ${String(v)}\``).join(' or ')} these keys are not allowed: ${forbidden.join(', ')}.`);
  }
  return out;
}

/** The description cell: the text, then allowed values, constraints and examples. */
function describe(schema: Schema, isRef: boolean): string {
  const parts: string[] = [];
  if (schema.description !== undefined) parts.push(text(schema.description));
  if (schema.const !== undefined) parts.push(`Must be ${code(schema.const)}.`);
  if (schema.enum !== undefined) parts.push(`One of: ${schema.enum.map(code).join(', ')}.`);
  if (!isRef) parts.push(...constraints(schema));
  if (schema.items !== undefined && schema.items.$ref === undefined) parts.push(...constraints(schema.items).map((c) => `Each item: ${lowerFirst(c)}`));
  if (typeof schema.additionalProperties === 'object' && schema.additionalProperties.$ref === undefined) {
    parts.push(...constraints(schema.additionalProperties).map((c) => `Each value: ${lowerFirst(c)}`));
  }
  if (schema.propertyNames !== undefined) parts.push(`Names: ${text(schema.propertyNames['x-message'] ?? `match \`${schema.propertyNames.pattern ?? ''}\``)}.`);
  if (!isRef && schema.examples !== undefined) parts.push(`Example${schema.examples.length === 1 ? '' : 's'}: ${schema.examples.map(code).join(', ')}.`);
  return parts.join(' ');
}

function constraints(schema: Schema): string[] {
  const out: string[] = [];
  if (schema.pattern !== undefined) out.push(schema['x-message'] === undefined ? `Matches \`${schema.pattern}\`.` : `${text(capitalize(schema['x-message']))}.`);
  else if (schema.minLength !== undefined && schema.minLength > 1) out.push(schema['x-message'] === undefined ? `At least ${schema.minLength} characters.` : `${text(capitalize(schema['x-message']))}.`);
  else if (schema.minLength === 1) out.push('Not empty.');
  if (schema.format !== undefined) out.push(`Format: ${schema.format}.`);
  if (schema.minimum !== undefined && schema.maximum !== undefined) out.push(`From ${schema.minimum} to ${schema.maximum}.`);
  else if (schema.minimum !== undefined) out.push(`At least ${schema.minimum}.`);
  if (schema.minItems !== undefined) out.push(`At least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}.`);
  if (schema.uniqueItems === true) out.push('No duplicates.');
  return out;
}

function typeName(schema: Schema, sections: readonly Section[]): string {
  if (schema.$ref !== undefined) {
    const section = sections.find((s) => s.id === schema.$ref);
    return section === undefined ? '`object`' : link(section);
  }
  if (schema.const !== undefined) return `\`${Number.isInteger(schema.const) ? 'integer' : typeof schema.const}\``;
  if (schema.enum !== undefined) return [...new Set(schema.enum.map((v) => `\`${typeof v}\``))].join(' \\| ');
  const types = schema.type === undefined ? [] : typeof schema.type === 'string' ? [schema.type] : schema.type;
  return types
    .map((t) => {
      if (t === 'array' && schema.items !== undefined) return `list of ${typeName(schema.items, sections)}`;
      if (t === 'object' && typeof schema.additionalProperties === 'object') return `map of ${typeName(schema.additionalProperties, sections)}`;
      return `\`${t}\``;
    })
    .join(' \\| ');
}

function link(section: Section): string {
  return `[${section.title}](#${slug(section.title)})`;
}

function isObjectSchema(schema: Schema): boolean {
  return schema.properties !== undefined;
}

function resolve(root: Schema, ref: string): Schema {
  const name = /^#\/\$defs\/([^/]+)$/.exec(ref)?.[1];
  const found = name === undefined ? undefined : root.$defs?.[name];
  if (found === undefined) throw new Error(`cannot resolve ${ref}`);
  return found;
}

/** `servers` → `<name>`, `env` → `<NAME>`: the placeholder for a map key. */
function placeholder(path: string): string {
  const last = path.split('.').at(-1) ?? '';
  if (last === 'env') return '<NAME>';
  if (last === 'headers') return '<Header>';
  if (last === 'rename' || last === 'descriptions') return '<tool>';
  return '<name>';
}

/** `authProvider` → `auth provider`; acronyms as people write them. */
function words(name: string): string {
  if (name === 'apiKey') return 'API key';
  return name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to dashes. */
function slug(title: string): string {
  return title
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replaceAll(' ', '-');
}

function code(value: unknown): string {
  const shown = typeof value === 'string' ? value : JSON.stringify(value);
  return `\`${shown.replaceAll('|', '\\|')}\``;
}

/** Table-safe text: pipes escaped, `<…>` outside code spans kept visible. */
function text(value: string): string {
  return value
    .split('`')
    .map((part, i) => (i % 2 === 1 ? part : part.replaceAll('<', '&lt;').replaceAll('>', '&gt;')))
    .join('`')
    .replaceAll('|', '\\|')
    .replaceAll('\n', ' ');
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

if (import.meta.main) {
  writeFileSync(new URL('../docs/config.md', import.meta.url), renderConfigDocs());
}
