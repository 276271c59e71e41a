import { constructFromEvents, defineMappingTag, defineScalarTag, EVENT_ID, NOT_RESOLVED, parseEvents, Schema as FastSchema, seqTag, strTag } from 'js-yaml';
import type { Event } from 'js-yaml';
import { isScalar, Schema } from 'yaml';
import type { InterpolationSite } from './interpolate.ts';
import type { KeyPath } from './issues.ts';

/**
 * The fast way to read a config: js-yaml's parser, about eight times faster
 * than yaml's, without positions. It reads only the YAML that both libraries
 * read the same way, and gives up (undefined) on everything else, so the
 * caller can parse again with yaml, which reports every problem at its line
 * and column:
 *
 * - anything js-yaml rejects (syntax errors, duplicate keys, nesting deeper
 *   than 100, more than one document or none);
 * - directives (`%YAML 1.1` would change the schema), tags, anchors and
 *   aliases (so no alias bomb gets here), and `<<` keys;
 * - where generated texts showed the two libraries to differ: tabs, byte
 *   order marks, lone carriage returns, document end markers (`...`),
 *   indented `---`, block scalars with an indentation indicator (`|2`) and
 *   escaped line breaks in double quotes;
 * - keys that are not strings: yaml turns a null key into '' and js-yaml into
 *   'null', and collection keys differ too;
 * - implicit keys long enough to reach yaml's 1,024-character limit.
 *
 * Plain scalars are resolved by yaml's own core-schema tags, in yaml's order,
 * so `yes`, `0755`, `.inf` or `2001-12-14` mean here exactly what they mean there.
 */

export interface FastDocument {
  readonly data: unknown;
  /** Every string value that mentions `$`: all interpolation needs to look at. */
  readonly sites: readonly InterpolationSite[];
}

/** A plain scalar that mentions `$`, kept apart until the walk notes where it is. */
class PlainText {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }
}

/** Thrown inside the constructor to give up; never escapes parseFast. */
class GiveUp extends Error {}

// yaml's own resolvers for untagged plain scalars, in the order it tries them (compose-scalar.js).
export const CORE_TAGS = new Schema({ schema: 'core' }).tags.filter((t) => t.default === true && t.test !== undefined && 'resolve' in t);
const NO_OPTIONS = {};
// Every CORE_TAGS test needs one of these first characters ('' for the empty null); others are strings at once.
const CORE_FIRST = /^(?:$|[~nNtTfF0-9+\-.])/;
// What js-yaml and yaml were seen to read differently (see config-fast-path.test.ts): a tab
// anywhere, a byte order mark, a carriage return alone, a `...` line, an indented `---` line, a `|2`
// or `>-1` block scalar header, `\` before a line break.
const DIFFERENT = /[\t\uFEFF]|\r(?!\n)|^\.\.\.(?:[ ]|\r?\n|$)|^ +---(?:[ ]|\r?\n|$)|[|>](?:[1-9][-+]?|[-+][1-9])[ ]*(?:#|\r?\n|$)|\\\r?\n/m;
const refuse = (): never => {
  throw new GiveUp();
};

const plainTag = defineScalarTag('tag:berth.dev,2026:plain', {
  implicit: true,
  implicitFirstChars: null,
  resolve: (source) => {
    if (source.includes('$')) return new PlainText(source);
    if (!CORE_FIRST.test(source)) return NOT_RESOLVED;
    for (const tag of CORE_TAGS) {
      if (tag.test?.test(source) === true) {
        const value: unknown = (tag.resolve as (s: string, onError: () => never, options: object) => unknown)(source, refuse, NO_OPTIONS);
        return isScalar(value) ? value.value : value;
      }
    }
    return NOT_RESOLVED;
  },
  identify: () => false,
});

// An implicit key of more than 1,024 characters is an error in yaml; a key of
// at most 170 decoded characters is at most 1,022 in the text (6 per `\uXXXX`, 2 quotes).
const MAX_KEY_LENGTH = 170;

const objectTag = defineMappingTag<Record<string, unknown>>('tag:yaml.org,2002:map', {
  create: () => ({}),
  addPair: (map, rawKey, value) => {
    const key = rawKey instanceof PlainText ? rawKey.text : rawKey;
    if (typeof key !== 'string') return 'a key that is not a string';
    if (key === '<<' || key.length > MAX_KEY_LENGTH) return 'a key yaml reads otherwise';
    // As yaml's toJS: a key the prototype knows (`__proto__`, `constructor`) becomes an own property.
    if (key in map) Object.defineProperty(map, key, { value, writable: true, enumerable: true, configurable: true });
    else map[key] = value;
    return '';
  },
  has: (map, key) => Object.hasOwn(map, key instanceof PlainText ? key.text : String(key)),
  keys: (map) => Object.keys(map),
  get: (map, key) => map[String(key)],
  identify: () => false,
});

const SCHEMA = new FastSchema([strTag, seqTag, objectTag, plainTag]);

/** Whether the event stream holds only what both libraries read alike: one plain document, no tags, anchors or aliases. */
function plainEvents(events: readonly Event[]): boolean {
  let documents = 0;
  for (const event of events) {
    switch (event.type) {
      case EVENT_ID.DOCUMENT:
        documents++;
        if (documents > 1 || event.directives.length > 0) return false;
        break;
      case EVENT_ID.ALIAS:
        return false;
      case EVENT_ID.SCALAR:
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE:
        if (event.anchorStart !== -1 || event.tagStart !== -1) return false;
        break;
      default:
        break;
    }
  }
  return documents === 1;
}

/** The config as plain data with its interpolation sites, or undefined when only yaml may read this text. */
export function parseFast(text: string): FastDocument | undefined {
  if (DIFFERENT.test(text)) return undefined;
  let data: unknown;
  try {
    const events = parseEvents(text, {});
    if (!plainEvents(events)) return undefined;
    const documents = constructFromEvents(events, { source: text, schema: SCHEMA });
    if (documents.length !== 1) return undefined;
    data = documents[0];
  } catch {
    // A syntax error, a refused key or scalar: yaml reads it and says where.
    return undefined;
  }
  const sites: InterpolationSite[] = [];
  const path: (string | number)[] = [];
  // Replaces every PlainText by its text and notes each string that mentions `$`.
  const walk = (container: Record<string | number, unknown>, key: string | number): void => {
    const value = container[key];
    if (typeof value === 'string') {
      if (value.includes('$')) sites.push(site(container, key, [...path], value, false));
    } else if (value instanceof PlainText) {
      container[key] = value.text;
      sites.push(site(container, key, [...path], value.text, true));
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        path.push(i);
        walk(value as unknown[] as Record<number, unknown>, i);
        path.pop();
      }
    } else if (value !== null && typeof value === 'object') {
      const map = value as Record<string, unknown>;
      for (const k in map) {
        path.push(k);
        walk(map, k);
        path.pop();
      }
    }
  };
  // The walk starts one level up, so the document itself may be a PlainText too.
  const root = { data };
  walk(root, 'data');
  return { data: root.data, sites };
}

function site(container: Record<string | number, unknown>, key: string | number, path: KeyPath, value: string, plain: boolean): InterpolationSite {
  return {
    path,
    value,
    plain,
    set: (next) => {
      container[key] = next;
    },
  };
}
