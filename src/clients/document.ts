import { parse as parseToml, TomlError } from 'smol-toml';
import type { ConfigIssue } from '../config/issues.ts';
import type { Positions } from '../config/source.ts';
import { parseSource } from '../config/source.ts';
import { tomlPositions } from './toml-positions.ts';

/** A client config file read into plain data, with where each key sits. */
export interface ClientDocument {
  readonly file: string;
  readonly syntax: 'json' | 'toml';
  readonly data: unknown;
  readonly positions: Positions;
}

export type ReadResult = { readonly ok: true; readonly doc: ClientDocument } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/**
 * Parses a client config. JSON (and the JSON with comments that VS Code and
 * Gemini CLI allow) goes through berth's own YAML reader, a superset of JSON,
 * so positions come from the same index `berth validate` uses; comments are
 * blanked first, keeping every offset. TOML is told by its file name.
 */
export function readClientDocument(file: string, text: string): ReadResult {
  if (/\.toml$/i.test(file)) return readToml(file, text);
  const { source, issues } = parseSource(file, blankComments(text));
  if (issues.length > 0) return { ok: false, issues: issues.map((i) => ({ ...i, code: i.code === 'yaml_duplicate_key' ? 'import_duplicate_key' : 'import_syntax' })) };
  return { ok: true, doc: { file, syntax: 'json', data: source.doc.toJS({ maxAliasCount: 0 }), positions: source.positions } };
}

function readToml(file: string, text: string): ReadResult {
  try {
    return { ok: true, doc: { file, syntax: 'toml', data: parseToml(text), positions: tomlPositions(text) } };
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const message = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'invalid TOML';
    return { ok: false, issues: [{ code: 'import_syntax', file, line: err.line, col: err.column, path: '', message }] };
  }
}

/** `//` and `/* … *\/` comments outside strings, replaced by spaces (newlines kept), so offsets stay put. */
export function blankComments(text: string): string {
  if (!text.includes('/')) return text;
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end;
    } else if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Offset just past the JSON string starting at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"' && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
  return Math.min(i + 1, text.length);
}
