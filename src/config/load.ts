import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import type { InterpolationContext } from './interpolate.ts';
import { interpolate, interpolateSites } from './interpolate.ts';
import type { ConfigIssue } from './issues.ts';
import { ConfigError } from './issues.ts';
import { validateSchema } from './schema.ts';
import { checkSemantics } from './semantics.ts';
import { parseFast } from './fast-parse.ts';
import type { Positions } from './source.ts';
import { parseSource } from './source.ts';
import type { BerthConfiguration } from './types.gen.ts';
import type { SourceVersion } from './version.ts';
import { MISSING, versionOfStats } from './version.ts';

const MAX_ALIAS_COUNT = 100;
const VALUE_CODES: ReadonlySet<string> = new Set(['wrong_type', 'invalid_value', 'not_allowed', 'out_of_range']);

/** A config that passed every check, with where it came from. */
export interface LoadedConfig {
  readonly file: string;
  readonly config: Readonly<BerthConfiguration>;
  /** The files it was read from, as they were read (absent for text that came from no file). */
  readonly sources?: readonly SourceVersion[];
}

export type ParseResult = { readonly ok: true; readonly value: LoadedConfig } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/**
 * Parses and checks config text: YAML → interpolation → schema → semantics.
 * Pure but for the injected file reader; every issue is reported, not only
 * the first. Semantic checks run only on schema-valid data, since they rely
 * on its shape.
 *
 * A config that is fine takes the fast path (js-yaml, no positions, about a
 * tenth of the time on a large file). Anything the fast path does not read
 * exactly like yaml, and any issue at all, goes through parseConfigWithPositions,
 * so every issue is reported as before, at its line and column.
 */
export function parseConfig(file: string, text: string, ctx: InterpolationContext): ParseResult {
  // Each `${file:…}` is read once, whichever path ends up parsing: a pipe can be read only once.
  const once = { ...ctx, readFile: readingOnce(ctx.readFile) };
  const fast = parseConfigFast(file, text, once);
  return fast === undefined ? parseConfigWithPositions(file, text, once) : { ok: true, value: fast };
}

/** A file reader that reads each path at most once, failures included. */
function readingOnce(readFile: (absolutePath: string) => string): (absolutePath: string) => string {
  const read = new Map<string, { text: string } | { err: unknown }>();
  return (absolutePath) => {
    let result = read.get(absolutePath);
    if (result === undefined) {
      try {
        result = { text: readFile(absolutePath) };
      } catch (err) {
        result = { err };
      }
      read.set(absolutePath, result);
    }
    if ('err' in result) throw result.err;
    return result.text;
  };
}

/** Positions on the fast path: never shown, since any issue there means parsing again with yaml. */
const NOWHERE: Positions = { value: () => ({ line: 1, col: 1 }), key: () => ({ line: 1, col: 1 }) };

/** The fast path: the loaded config when the text is plain YAML and has no issue, else undefined. */
export function parseConfigFast(file: string, text: string, ctx: InterpolationContext): LoadedConfig | undefined {
  const parsed = parseFast(text);
  if (parsed === undefined) return undefined;
  if (interpolateSites(parsed.sites, file, NOWHERE, ctx).length > 0) return undefined;
  const data = parsed.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return undefined;
  if (validateSchema(data, file, NOWHERE).length > 0) return undefined;
  const config = data as BerthConfiguration;
  if (checkSemantics(config, file, NOWHERE).length > 0) return undefined;
  return { file, config: deepFreeze(config) };
}

/** The full path with yaml's Document: every issue, each at its position. */
export function parseConfigWithPositions(file: string, text: string, ctx: InterpolationContext): ParseResult {
  const { source, issues } = parseSource(file, text);
  if (issues.length > 0) return { ok: false, issues };
  const interpolationIssues = interpolate(source, ctx);
  let data: unknown;
  try {
    data = source.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // The one failure left once syntax and aliases are checked: too many alias expansions.
    if (!(err instanceof ReferenceError)) throw err;
    return { ok: false, issues: [{ code: 'yaml_syntax', file, line: 1, col: 1, path: '', message: `too many alias expansions (at most ${MAX_ALIAS_COUNT}); the file may be an alias bomb` }] };
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { ok: false, issues: [{ code: 'not_a_mapping', file, line: 1, col: 1, path: '', message: 'the config must be a mapping with `version` and `servers`' }] };
  }
  // A value whose reference failed still holds the raw `${…}` text; schema errors
  // about that value would only repeat the problem. Errors about its key stay.
  const unresolved = new Set(interpolationIssues.map((i) => i.path));
  const schemaIssues = validateSchema(data, file, source.positions).filter((i) => !(unresolved.has(i.path) && VALUE_CODES.has(i.code)));
  if (schemaIssues.length > 0 || interpolationIssues.length > 0) return { ok: false, issues: [...interpolationIssues, ...schemaIssues] };
  const config = data as BerthConfiguration;
  const semanticIssues = checkSemantics(config, file, source.positions);
  if (semanticIssues.length > 0) return { ok: false, issues: semanticIssues };
  return { ok: true, value: { file, config: deepFreeze(config) } };
}

/** The largest config file (and `${file:…}` file) berth reads, unless BERTH_CONFIG_MAX_BYTES says otherwise. */
export const DEFAULT_MAX_CONFIG_BYTES = 4 * 1024 * 1024;
const READ_CHUNK = 64 * 1024;

/** Thrown by readBounded for a file over the limit; `size` is undefined when it is not a regular file. */
class TooLarge extends Error {
  readonly size: number | undefined;

  constructor(size: number | undefined) {
    super('too large');
    this.size = size;
  }
}

/**
 * Reads a file as UTF-8, at most `limit` bytes. A regular file's size is
 * checked before reading; a device or pipe (`/dev/zero`, `<(…)`) has no size,
 * so it is read in chunks and given up on one byte past the limit.
 */
function readBounded(file: string, limit: number, sources: SourceVersion[]): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    sources.push({ path: file, version: MISSING });
    throw err;
  }
  try {
    // The version of what is read, not of the path: a rename right after the open is a change still to read.
    const big = fstatSync(fd, { bigint: true });
    sources.push({ path: file, version: versionOfStats(big) });
    const stat = { isFile: big.isFile(), size: Number(big.size) };
    if (stat.isFile && stat.size > limit) throw new TooLarge(stat.size);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, limit + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > limit) throw new TooLarge(stat.isFile ? stat.size : undefined);
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The size limit: BERTH_CONFIG_MAX_BYTES when it is a positive integer, else the default. */
export function maxConfigBytes(env: Readonly<Record<string, string | undefined>>): number {
  const value = Number(env['BERTH_CONFIG_MAX_BYTES']);
  return Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_MAX_CONFIG_BYTES;
}

function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes.toLocaleString('en-US')} bytes`;
}

/** What one read of a config file gave: the config or every issue, and the files read, as they were. */
export type ReadResult = ParseResult & { readonly sources: readonly SourceVersion[] };

/** Reads and checks a config file; config problems are issues in the result, never thrown. */
export function readConfigFile(file: string, env: Readonly<Record<string, string | undefined>> = process.env): ReadResult {
  const limit = maxConfigBytes(env);
  const sources: SourceVersion[] = [];
  let text: string;
  try {
    text = readBounded(file, limit, sources);
  } catch (err) {
    if (err instanceof TooLarge) {
      const size = err.size === undefined ? `is not a regular file and goes on past ${limit.toLocaleString('en-US')} bytes` : `is ${err.size.toLocaleString('en-US')} bytes`;
      return { ok: false, sources, issues: [{ code: 'config_too_large', file, line: 1, col: 1, path: '', message: `file ${size}; the limit is ${formatBytes(limit)}`, hint: 'is this the config file? set BERTH_CONFIG_MAX_BYTES to allow a larger one' }] };
    }
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return { ok: false, sources, issues: [{ code: 'config_unreadable', file, line: 1, col: 1, path: '', message: `cannot read the config file (${code})`, hint: 'pass its path as the first argument, or set BERTH_CONFIG' }] };
  }
  const result = parseConfig(file, text, { env, readFile: (p) => readReferenced(p, limit, sources), baseDir: path.dirname(path.resolve(file)) });
  return result.ok ? { ok: true, sources, value: { ...result.value, sources } } : { ...result, sources };
}

/** Reads and checks a config file; throws ConfigError with every issue. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const result = readConfigFile(file, env);
  if (!result.ok) throw new ConfigError(result.issues);
  return result.value;
}

/** A `${file:…}` read: the same limit; over it, an error whose code interpolation reports. */
function readReferenced(file: string, limit: number, sources: SourceVersion[]): string {
  try {
    return readBounded(file, limit, sources);
  } catch (err) {
    if (err instanceof TooLarge) throw Object.assign(new Error(`over ${formatBytes(limit)}`), { code: `larger than ${formatBytes(limit)}` });
    throw err;
  }
}

/** Freezes a value and everything in it; a loaded config is never changed. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    // for…in allocates nothing; loaded data has only own, plain keys.
    for (const key in value) deepFreeze(value[key]);
    Object.freeze(value);
  }
  return value;
}
