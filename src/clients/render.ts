import path from 'node:path';
import { Document, isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import type { ConfigIssue } from '../config/issues.ts';
import { parseConfig } from '../config/load.ts';
import type { Server } from '../config/types.gen.ts';
import type { Imported } from './to-berth.ts';

// The two ways imported servers leave: a fragment for stdout, or spliced
// into an existing berth.yaml. The splice writes new text after the last
// server and leaves every existing byte (comments, quoting, blank lines) as
// it was; yaml's Document finds where, and re-serializes only the rare file
// whose `servers` is written in flow style or missing.

const OPTIONS = { indent: 2, lineWidth: 0 } as const;

/** `servers:` with the imported servers, headed by where they came from; servers left out are named in a closing comment. */
export function renderFragment(imported: Imported, source: string, label: string): string {
  const doc = new Document({ servers: Object.fromEntries(imported.servers) });
  doc.commentBefore = ` Imported from ${source} (${label}) by berth import.`;
  if (imported.skipped.length > 0) doc.comment = [' Not imported:', ...imported.skipped.map((s) => `   ${s.name}: ${s.why}`)].join('\n');
  return doc.toString(OPTIONS);
}

export type MergeResult = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/**
 * The berth.yaml text with the imported servers added. Refuses names the
 * file already has, and a result berth would not load (environment
 * variables aside: they are read when berth starts, not here).
 */
export function mergeInto(file: string, text: string, servers: readonly (readonly [string, Server])[]): MergeResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, keepSourceTokens: false });
  const existing = doc.get('servers', true);
  const collisions: ConfigIssue[] = [];
  if (isMap(existing)) {
    for (const pair of existing.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!servers.some(([name]) => name === key)) continue;
      const pos = lines.linePos(isScalar(pair.key) ? (pair.key.range?.[0] ?? 0) : 0);
      collisions.push({ code: 'import_name_taken', file, line: pos.line, col: pos.col, path: `servers.${key}`, message: `a server named ${key} is already here`, hint: 'rename or remove one of them, then import again' });
    }
  }
  if (collisions.length > 0) return { ok: false, issues: collisions };
  const at = splice(existing, lines);
  const next = at === undefined ? reserialized(doc, servers) : insert(text, at, servers);
  const issues = loadIssues(file, next, servers.map(([name]) => name));
  return issues.length > 0 ? { ok: false, issues } : { ok: true, text: next };
}

/** Where new entries go in a block `servers:` map (and at what indent), else undefined. */
function splice(existing: unknown, lines: LineCounter): { offset: number; indent: number } | undefined {
  if (!isMap(existing) || existing.flow === true || existing.items.length === 0 || existing.range == null) return undefined;
  const first = existing.items[0]?.key;
  const keyOffset = isScalar(first) ? first.range?.[0] : undefined;
  if (keyOffset === undefined) return undefined;
  return { offset: existing.range[1], indent: lines.linePos(keyOffset).col - 1 };
}

function insert(text: string, at: { offset: number; indent: number }, servers: readonly (readonly [string, Server])[]): string {  const block = new Document(Object.fromEntries(servers)).toString(OPTIONS);
  const indented = block.replace(/^(?=.)/gm, ' '.repeat(at.indent));
  const before = text.slice(0, at.offset);
  return `${before}${before.endsWith('\n') ? '' : '\n'}${indented}${text.slice(at.offset)}`;
}

/** A file whose `servers` is missing, empty or in flow style: set through the Document, comments kept. */
function reserialized(doc: Document.Parsed, servers: readonly (readonly [string, Server])[]): string {
  if (!isMap(doc.get('servers', true))) doc.set('servers', doc.createNode({}));
  for (const [name, server] of servers) doc.setIn(['servers', name], doc.createNode(server));
  const map = doc.get('servers', true);
  if (isMap(map)) map.flow = false;
  return doc.toString(OPTIONS);
}

/** What berth would say about the new servers in the merged file. */
function loadIssues(file: string, text: string, names: readonly string[]): ConfigIssue[] {
  const result = parseConfig(file, text, { env: placeholderEnv(text, process.env), readFile: () => PLACEHOLDER, baseDir: path.dirname(path.resolve(file)) });
  if (result.ok) return [];
  const mine = (p: string): boolean => names.some((n) => p === `servers.${n}` || p.startsWith(`servers.${n}.`) || p.startsWith(`servers.${n}[`));
  return result.issues.filter((i) => i.path === '' || i.path === 'servers' || mine(i.path));
}

/** Long enough for a state key; a plain word, so a URL with it in its host still parses. */
const PLACEHOLDER = 'placeholder'.repeat(3);

/**
 * `${env:…}` is resolved when berth starts, not when a file is written: an
 * environment in which every variable is set (to `env`'s value, else a
 * placeholder), except those the text gives a default, which stay unset so
 * the default is what gets checked.
 */
export function placeholderEnv(text: string, env: Readonly<Record<string, string | undefined>> = {}): Readonly<Record<string, string | undefined>> {
  const defaulted = new Set([...text.matchAll(/\$\{env:([^}:]+):-/g)].map((m) => m[1]));
  return new Proxy({}, { get: (_target, key) => (typeof key !== 'string' ? undefined : (env[key] ?? (defaulted.has(key) ? undefined : PLACEHOLDER))) });
}
