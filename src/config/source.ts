import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Pair, Scalar, YAMLMap } from 'yaml';
import type { ConfigIssue, KeyPath, Position } from './issues.ts';
import { formatKeyPath } from './issues.ts';

/** A parsed YAML document plus where every key and value sits in the text. */
export interface SourceDocument {
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly positions: PositionIndex;
  /** The string values that mention `$`, in document order: all that interpolation needs to look at. */
  readonly references: readonly Reference[];
}

/** A string value that may hold a `${…}` reference, with its key path. */
export interface Reference {
  readonly node: Scalar;
  readonly path: KeyPath;
}

type Ranged = { range?: [number, number, number] | null } | null | undefined;

/** Where a key path sits in the text: what issues are reported at. */
export interface Positions {
  value(path: KeyPath): Position;
  key(path: KeyPath): Position;
}

/**
 * Finds where a key path sits in the document. Errors about a key (unknown,
 * misspelt) point at the key; errors about a value point at the value.
 * Positions are looked up only for the few paths that have an issue, so a
 * file with thousands of servers costs no index up front; a mapping gets a
 * key index the first time a path goes through it.
 */
export class PositionIndex implements Positions {
  readonly #doc: Document.Parsed;
  readonly #lines: LineCounter;
  readonly #keys = new WeakMap<YAMLMap, Map<string, Pair>>();

  constructor(doc: Document.Parsed, lines: LineCounter) {
    this.#doc = doc;
    this.#lines = lines;
  }

  /** The value's position, else the closest enclosing node's, else 1:1. */
  value(path: KeyPath): Position {
    return this.#find(path, false);
  }

  /** The key's position for map entries, else the value's. */
  key(path: KeyPath): Position {
    return this.#find(path, true);
  }

  #find(path: KeyPath, onKey: boolean): Position {
    let node: unknown = this.#doc.contents;
    let pos = this.#at(node as Ranged) ?? { line: 1, col: 1 };
    for (const [i, seg] of path.entries()) {
      let next: unknown;
      if (isMap(node)) {
        const pair = this.#index(node).get(String(seg));
        if (pair === undefined) return pos;
        const keyPos = this.#at(pair.key as Ranged);
        if (onKey && i === path.length - 1 && keyPos !== undefined) return keyPos;
        pos = keyPos ?? pos;
        next = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg];
      } else {
        return pos;
      }
      pos = this.#at(next as Ranged) ?? pos;
      node = next;
    }
    return pos;
  }

  #index(map: YAMLMap): Map<string, Pair> {
    let index = this.#keys.get(map);
    if (index === undefined) {
      index = new Map();
      // The first of duplicate keys: the second is reported as a duplicate.
      for (const pair of map.items) if (!index.has(keyText(pair.key))) index.set(keyText(pair.key), pair);
      this.#keys.set(map, index);
    }
    return index;
  }

  #at(node: Ranged): Position | undefined {
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : this.#lines.linePos(offset);
  }
}

/**
 * Parses YAML, reporting syntax errors, duplicate keys and aliases without an
 * anchor, with positions. yaml's own duplicate-key check compares each key
 * with every earlier one of its mapping and its alias check walks the whole
 * document per alias: both are quadratic in a file with thousands of servers.
 * One walk here does both with sets, and notes the values interpolation must
 * look at. The walk keeps one path stack and copies it only for a value it
 * keeps or an issue, so a large file costs no array per node.
 */
export function parseSource(file: string, text: string): { source: SourceDocument; issues: ConfigIssue[] } {
  const lines = new LineCounter();
  const doc = withPlainEnv(() => parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false, strict: true }));
  const issues: ConfigIssue[] = [];
  const issue = (node: Ranged, path: KeyPath, code: string, message: string, hint?: string): void => {
    const pos = lines.linePos(node?.range?.[0] ?? 0);
    issues.push({ code, file, line: pos.line, col: pos.col, path: formatKeyPath(path), message, ...(hint === undefined ? {} : { hint }) });
  };
  for (const err of [...doc.errors, ...doc.warnings]) {
    const pos = lines.linePos(err.pos[0]);
    issues.push({ code: 'yaml_syntax', file, line: pos.line, col: pos.col, path: '', message: yamlMessage(err.message) });
  }
  const anchors = new Set<string>();
  const references: Reference[] = [];
  const path: (string | number)[] = [];
  // `isKey`: a mapping's own key is never interpolated, as it names a field.
  const walk = (node: unknown, isKey: boolean): void => {
    if (isAlias(node)) {
      // An alias names the closest anchor before it in the text, which this walk has passed.
      if (!anchors.has(node.source)) issue(node, [], 'yaml_syntax', `unknown alias \`*${node.source}\`: the anchor \`&${node.source}\` must come before it`);
      return;
    }
    if (isScalar(node)) {
      if (node.anchor !== undefined) anchors.add(node.anchor);
      if (!isKey && typeof node.value === 'string' && node.value.includes('$')) references.push({ node, path: [...path] });
      return;
    }
    if (!isCollection(node)) return;
    if (node.anchor !== undefined) anchors.add(node.anchor);
    if (isMap(node)) {
      const seen = new Map<string, Pair>();
      for (const pair of node.items) {
        walk(pair.key, true);
        const key = keyText(pair.key);
        path.push(key);
        const first = seen.get(key);
        if (first === undefined) {
          seen.set(key, pair);
          walk(pair.value, false);
        } else {
          const at = lines.linePos((first.key as Ranged)?.range?.[0] ?? 0);
          issue(pair.key as Ranged, path, 'yaml_duplicate_key', 'duplicate key: each key may appear once in a mapping', `first at line ${at.line}, column ${at.col}`);
        }
        path.pop();
      }
    } else if (isSeq(node)) {
      for (let i = 0; i < node.items.length; i++) {
        path.push(i);
        walk(node.items[i], false);
        path.pop();
      }
    }
  };
  walk(doc.contents, false);
  return { source: { file, doc, positions: new PositionIndex(doc, lines), references }, issues };
}

/**
 * Runs `fn` with `process.env` swapped for a plain copy. yaml's parser reads
 * `process.env.LOG_TOKENS` once per token, and Node's `process.env` is a
 * native object whose every read goes through C++: that read alone was a
 * sixth of the instructions parsing a large file took. Parsing is synchronous,
 * so no other code runs while the copy stands in, and the real object is back
 * before any can.
 */
function withPlainEnv<T>(fn: () => T): T {
  const env = process.env;
  process.env = { ...env };
  try {
    return fn();
  } finally {
    process.env = env;
  }
}

/** A mapping key as a path segment: what the key becomes in the loaded object. */
function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/** yaml's messages end with a position we already report; keep the sentence. */
function yamlMessage(message: string): string {
  return message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').trim();
}
