import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit as visitYaml } from 'yaml';
import type { Document, Node } from 'yaml';
import type { ConfigIssue, KeyPath, Position } from './issues.ts';

/** A parsed YAML document plus where every key and value sits in the text. */
export interface SourceDocument {
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly positions: PositionIndex;
}

/**
 * Maps a key path to the position of its value and, for map entries, of its
 * key. Errors about a key (unknown, misspelt) point at the key; errors about a
 * value point at the value.
 */
export class PositionIndex {
  readonly #values = new Map<string, Position>();
  readonly #keys = new Map<string, Position>();

  static pathKey(path: KeyPath): string {
    return path.join('\u0000');
  }

  setValue(path: KeyPath, pos: Position): void {
    this.#values.set(PositionIndex.pathKey(path), pos);
  }

  setKey(path: KeyPath, pos: Position): void {
    this.#keys.set(PositionIndex.pathKey(path), pos);
  }

  /** The value's position, else the closest enclosing node's, else 1:1. */
  value(path: KeyPath): Position {
    for (let n = path.length; n >= 0; n--) {
      const found = this.#values.get(PositionIndex.pathKey(path.slice(0, n)));
      if (found !== undefined) return found;
    }
    return { line: 1, col: 1 };
  }

  /** The key's position for map entries, else the value's. */
  key(path: KeyPath): Position {
    return this.#keys.get(PositionIndex.pathKey(path)) ?? this.value(path);
  }
}

/** Parses YAML, reporting syntax errors and duplicate keys with positions. */
export function parseSource(file: string, text: string): { source: SourceDocument; issues: ConfigIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const issues: ConfigIssue[] = [];
  for (const err of [...doc.errors, ...doc.warnings]) {
    const pos = lineCounter.linePos(err.pos[0]);
    const duplicate = err.code === 'DUPLICATE_KEY';
    issues.push({
      code: duplicate ? 'yaml_duplicate_key' : 'yaml_syntax',
      file,
      line: pos.line,
      col: pos.col,
      path: '',
      message: duplicate ? 'duplicate key: each key may appear once in a mapping' : yamlMessage(err.message),
    });
  }
  // yaml reports an alias without its anchor only when converting, by throwing.
  visitYaml(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) !== undefined) return;
      const pos = lineCounter.linePos(node.range?.[0] ?? 0);
      issues.push({ code: 'yaml_syntax', file, line: pos.line, col: pos.col, path: '', message: `unknown alias \`*${node.source}\`: the anchor \`&${node.source}\` must come before it` });
    },
  });
  const positions = new PositionIndex();
  const at = (node: { range?: [number, number, number] | null } | null | undefined): Position | undefined => {
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : lineCounter.linePos(offset);
  };
  const visit = (node: Node | null | undefined, path: (string | number)[]): void => {
    const pos = at(node);
    if (pos !== undefined) positions.setValue(path, pos);
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const keyPath = [...path, key];
        const keyPos = at(pair.key as Node);
        if (keyPos !== undefined) {
          positions.setKey(keyPath, keyPos);
          positions.setValue(keyPath, keyPos);
        }
        visit(pair.value as Node | null, keyPath);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item as Node, [...path, i]));
    }
  };
  visit(doc.contents, []);
  return { source: { file, doc, positions }, issues };
}

/** yaml's messages end with a position we already report; keep the sentence. */
function yamlMessage(message: string): string {
  return message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').trim();
}
