import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { InterpolationContext } from './interpolate.ts';
import { interpolate } from './interpolate.ts';
import type { ConfigIssue } from './issues.ts';
import { ConfigError } from './issues.ts';
import { validateSchema } from './schema.ts';
import { checkSemantics } from './semantics.ts';
import { parseSource } from './source.ts';
import type { BerthConfiguration } from './types.gen.ts';

const MAX_ALIAS_COUNT = 100;
const VALUE_CODES: ReadonlySet<string> = new Set(['wrong_type', 'invalid_value', 'not_allowed', 'out_of_range']);

/** A config that passed every check, with where it came from. */
export interface LoadedConfig {
  readonly file: string;
  readonly config: Readonly<BerthConfiguration>;
}

export type ParseResult = { readonly ok: true; readonly value: LoadedConfig } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/**
 * Parses and checks config text: YAML → interpolation → schema → semantics.
 * Pure but for the injected file reader; every issue is reported, not only
 * the first. Semantic checks run only on schema-valid data, since they rely
 * on its shape.
 */
export function parseConfig(file: string, text: string, ctx: InterpolationContext): ParseResult {
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

/** Reads and checks a config file; throws ConfigError with every issue. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([{ code: 'config_unreadable', file, line: 1, col: 1, path: '', message: `cannot read the config file (${code})`, hint: 'pass its path as the first argument, or set BERTH_CONFIG' }]);
  }
  const result = parseConfig(file, text, { env, readFile: (p) => readFileSync(p, 'utf8'), baseDir: path.dirname(path.resolve(file)) });
  if (!result.ok) throw new ConfigError(result.issues);
  return result.value;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    // for…in allocates nothing; loaded data has only own, plain keys.
    for (const key in value) deepFreeze(value[key]);
    Object.freeze(value);
  }
  return value;
}
