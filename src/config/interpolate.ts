import path from 'node:path';
import { Scalar } from 'yaml';
import type { ConfigIssue, KeyPath } from './issues.ts';
import { formatKeyPath } from './issues.ts';
import type { Positions, SourceDocument } from './source.ts';
import { isUserReference, USER_PREFIX } from './user-template.ts';

/** Where `${env:…}` and `${file:…}` read from; injected so loading stays testable. */
export interface InterpolationContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads a file (absolute path) as UTF-8; throws when it cannot. */
  readonly readFile: (absolutePath: string) => string;
  /** Directory `${file:…}` paths are relative to: the config file's. */
  readonly baseDir: string;
}

const REFERENCE = /\$\$\{|\$\{([^}]*)\}?/g;

/**
 * Replaces `${env:NAME}`, `${env:NAME:-default}` and `${file:path}` in every
 * string value, in place. `$${` stands for a literal `${`. A plain (unquoted)
 * value that is exactly one reference becomes a number or boolean when it
 * expands to one, so `port: ${env:PORT}` is a number; quoted values stay strings. File
 * contents lose one trailing newline, as secret files usually end with one.
 * In header values, `${user.credentials.NAME}` stays for the per-request
 * template (see user-template.ts); anywhere else it is an error.
 */
export function interpolate(source: SourceDocument, ctx: InterpolationContext): ConfigIssue[] {
  // parseSource noted every string value with a `$`; no other value can hold a reference.
  const sites = source.references.map(({ node, path: keyPath }): InterpolationSite => ({
    path: keyPath,
    value: node.value,
    plain: node.type === Scalar.PLAIN,
    set: (value) => {
      node.value = value;
    },
  }));
  return interpolateSites(sites, source.file, source.positions, ctx);
}

/** A value that may hold a reference: its path, its text, whether it was written unquoted, and how to replace it. */
export interface InterpolationSite {
  readonly path: KeyPath;
  readonly value: unknown;
  readonly plain: boolean;
  set(value: string | number | boolean): void;
}

/** interpolate() over any document: yaml's nodes, or the plain data of the fast path (see fast-parse.ts). */
export function interpolateSites(sites: Iterable<InterpolationSite>, file: string, positions: Positions, ctx: InterpolationContext): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const { value: text, plain, set, path: keyPath } of sites) {
    const fail = (code: string, message: string, hint?: string): void => {
      const pos = positions.value(keyPath);
      issues.push({ code, file, line: pos.line, col: pos.col, path: formatKeyPath(keyPath), message, ...(hint === undefined ? {} : { hint }) });
    };
    if (typeof text !== 'string') continue; // already expanded to a number or boolean
    // Header values keep per-user references (and their escapes) for the per-request template.
    const inHeaders = isHeaderValue(keyPath);
    let whole = false;
    const expanded = text.replace(REFERENCE, (match: string, ref: string | undefined, offset: number) => {
      if (match === '$${') return inHeaders && text.startsWith(USER_PREFIX, offset + 3) ? match : '${';
      if (!match.endsWith('}')) {
        fail('interpolation_unterminated', `unterminated \`\${\` in ${JSON.stringify(text)}`, 'close it with `}`, or write `$${` for a literal `${`');
        return match;
      }
      whole = offset === 0 && match.length === text.length;
      if (ref?.startsWith(USER_PREFIX) === true) {
        checkUserReference(ref, inHeaders, fail);
        return match;
      }
      const value = resolveReference(ref ?? '', ctx, fail);
      // An expanded secret that happens to contain `${user.` is text, not a reference.
      return value === undefined ? match : inHeaders ? value.replaceAll('${user.', () => '$${user.') : value;
    });
    if (expanded === text) continue;
    set(whole && plain ? plainScalar(expanded) : expanded);
  }
  return issues;
}

/**
 * The number or boolean a plain expanded value stands for, else the text itself.
 * Only values that read back identically are converted, so `0123`, `1e3` or a
 * secret that happens to look like YAML (`{x`, `a # b`) are never altered.
 */
function plainScalar(text: string): string | number | boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  const number = Number(text);
  return text !== '' && Number.isFinite(number) && String(number) === text ? number : text;
}

function resolveReference(
  ref: string,
  ctx: InterpolationContext,
  fail: (code: string, message: string, hint?: string) => void,
): string | undefined {
  const colon = ref.indexOf(':');
  const scheme = colon < 0 ? '' : ref.slice(0, colon);
  const arg = ref.slice(colon + 1);
  if (scheme === 'env') {
    const dflt = arg.indexOf(':-');
    const name = dflt < 0 ? arg : arg.slice(0, dflt);
    const value = ctx.env[name];
    if (value !== undefined && value !== '') return value;
    if (dflt >= 0) return arg.slice(dflt + 2);
    fail('interpolation_env_missing', `environment variable ${name} is not set`, `set ${name}, or give a default: \${env:${name}:-value}`);
    return undefined;
  }
  if (scheme === 'file') {
    const file = path.resolve(ctx.baseDir, arg);
    try {
      return ctx.readFile(file).replace(/\r?\n$/, '');
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      fail('interpolation_file_unreadable', `cannot read ${file} for \${file:${arg}} (${reason})`, 'paths are relative to the config file');
      return undefined;
    }
  }
  fail('interpolation_unknown', `unknown reference \${${ref}}`, 'use ${env:NAME} or ${file:path}; write $${ for a literal ${');
  return undefined;
}

/** `servers.<name>.headers.<header>`, written directly or as its `value`. */
function isHeaderValue(keyPath: KeyPath): boolean {
  const [root, , section, , value, ...more] = keyPath;
  return root === 'servers' && section === 'headers' && keyPath.length >= 4 && (keyPath.length === 4 || (value === 'value' && more.length === 0));
}

function checkUserReference(ref: string, inHeaders: boolean, fail: (code: string, message: string, hint?: string) => void): void {
  if (!inHeaders) {
    fail('user_reference_misplaced', `\${${ref}} can only be used in a server's \`headers\``, "a caller's credentials reach a shared server as request headers; a single-user server can also take `env` values with `fromUser: true`");
  } else if (!isUserReference(ref)) {
    fail('user_reference_invalid', `unknown reference \${${ref}}`, "write ${user.credentials.NAME} for a NAME in the server's `credentials`");
  }
}
