import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { closest, distance } from 'fastest-levenshtein';
import type { ConfigIssue, KeyPath } from './issues.ts';
import { formatKeyPath } from './issues.ts';
import type { Positions } from './source.ts';

const schemaUrl = new URL('../../schemas/berth.schema.json', import.meta.url);

/** The config contract, as shipped in schemas/berth.schema.json. */
export const configSchema: Readonly<Record<string, unknown>> = JSON.parse(readFileSync(schemaUrl, 'utf8'));

let compiled: ValidateFunction | undefined;

/** ajv is compiled once, lazily, with every error and the failing schema kept. */
function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictRequired: false, allowUnionTypes: true });
    const addFormats = addFormatsModule as unknown as (a: Ajv2020) => void;
    addFormats(ajv);
    // Annotations berth reads when it explains an error; they validate nothing.
    ajv.addKeyword({ keyword: 'x-message', schemaType: 'string' });
    compiled = ajv.compile(configSchema);
  }
  return compiled;
}

/** Validates parsed data against the schema and explains every failure at its position. */
export function validateSchema(data: unknown, file: string, positions: Positions): ConfigIssue[] {
  const validate = validator();
  if (validate(data)) return [];
  const issues = new Map<string, ConfigIssue>();
  for (const err of validate.errors ?? []) {
    const issue = explain(err, data, file, positions);
    if (issue === undefined) continue;
    const key = `${issue.line}:${issue.col}:${issue.message}`;
    if (!issues.has(key)) issues.set(key, issue);
  }
  return [...issues.values()];
}

function explain(err: ErrorObject, data: unknown, file: string, positions: Positions): ConfigIssue | undefined {
  const path = parsePointer(err.instancePath);
  const parentSchema = (err.parentSchema ?? {}) as Record<string, unknown>;
  const custom = typeof parentSchema['x-message'] === 'string' ? parentSchema['x-message'] : undefined;
  const issue = (at: KeyPath, code: string, message: string, hint?: string, onKey = false): ConfigIssue => {
    const pos = onKey ? positions.key(at) : positions.value(at);
    return { code, file, line: pos.line, col: pos.col, path: formatKeyPath(at), message, ...(hint === undefined ? {} : { hint }) };
  };
  switch (err.keyword) {
    case 'if':
      return undefined; // the failing `then` reports the real problem
    case 'additionalProperties': {
      const key = String(err.params['additionalProperty']);
      const known = Object.keys((parentSchema['properties'] ?? {}) as object);
      return issue([...path, key], 'unknown_key', `unknown key \`${key}\``, suggest(key, known), true);
    }
    case 'false schema': {
      const key = String(path.at(-1));
      // The nearest enclosing object that has a kind: backend.pods.* belongs to the backend's type.
      const kind = path.map((_, i) => valueAt(data, path.slice(0, path.length - 1 - i)) as Record<string, unknown> | undefined).map((o) => o?.['type'] ?? o?.['runtime']).find((k) => k !== undefined);
      return issue(path, 'key_not_applicable', `\`${key}\` does not apply to type \`${String(kind)}\``, 'remove it, or change `type`', true);
    }
    case 'required': {
      // A failed `oneOf` branch is not a requirement of its own; the `oneOf` error explains the choice.
      if (/\/oneOf\/\d+\/required$/.test(err.schemaPath)) return undefined;
      const missing = String(err.params['missingProperty']);
      return issue(path, 'missing_key', custom ?? `missing required key \`${missing}\``);
    }
    case 'type': {
      const expected = String(err.params['type']).replaceAll(',', ' or ');
      return issue(path, 'wrong_type', `must be ${article(expected)}, not ${describe(valueAt(data, path))}`);
    }
    case 'enum': {
      const allowed = (err.params['allowedValues'] as unknown[]).map(String);
      const actual = valueAt(data, path);
      return issue(path, 'not_allowed', `must be one of: ${allowed.join(', ')}`, typeof actual === 'string' ? suggest(actual, allowed) : undefined);
    }
    case 'const':
      return issue(path, 'not_allowed', `must be ${JSON.stringify(err.params['allowedValue'])}`);
    case 'propertyNames':
      return undefined; // reported by the nested `pattern` error with the name itself
    case 'pattern': {
      if (err.propertyName !== undefined) {
        return issue([...path, err.propertyName], 'invalid_name', `invalid name \`${err.propertyName}\`: ${custom ?? `must match ${String(err.params['pattern'])}`}`, undefined, true);
      }
      return issue(path, 'invalid_value', custom ?? `must match ${String(err.params['pattern'])}`);
    }
    case 'format':
      return issue(path, 'invalid_value', custom ?? `must be a valid ${String(err.params['format'])}`);
    case 'minimum':
    case 'maximum':
      return issue(path, 'out_of_range', `must be ${err.keyword === 'minimum' ? '≥' : '≤'} ${String(err.params['limit'])}`);
    case 'minLength':
      return issue(path, 'invalid_value', custom ?? (err.params['limit'] === 1 ? 'must not be empty' : `must be at least ${String(err.params['limit'])} characters`));
    case 'minItems':
      return issue(path, 'invalid_value', `must have at least ${String(err.params['limit'])} item${err.params['limit'] === 1 ? '' : 's'}`);
    case 'uniqueItems':
      return issue(path, 'invalid_value', `must not repeat items (items ${String(err.params['j'])} and ${String(err.params['i'])} are equal)`);
    case 'oneOf':
      return issue(path, 'invalid_value', custom ?? 'must match exactly one of the allowed forms');
    default:
      return issue(path, 'invalid_value', custom ?? err.message ?? 'is invalid');
  }
}

/** "did you mean `runtime`?" when a known word is close enough to be the intended one. */
export function suggest(word: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const best = closest(word, [...known]);
  const limit = Math.max(1, Math.floor(best.length / 3));
  return distance(word.toLowerCase(), best.toLowerCase()) <= limit ? `did you mean \`${best}\`?` : undefined;
}

function parsePointer(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function valueAt(data: unknown, path: KeyPath): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function article(type: string): string {
  const words: Record<string, string> = { object: 'a mapping', array: 'a list', integer: 'an integer', string: 'a string', number: 'a number', boolean: 'a boolean (true or false)' };
  return type
    .split(' or ')
    .map((t) => words[t] ?? t)
    .join(' or ');
}
