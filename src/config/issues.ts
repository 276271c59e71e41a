import { BerthError } from '../errors.ts';

/** A position in a source file, 1-based like editors show it. */
export interface Position {
  readonly line: number;
  readonly col: number;
}

/** One problem found in a config file. */
export interface ConfigIssue {
  /** Stable code, see docs/errors.md. */
  readonly code: string;
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** Dotted key path, e.g. `servers.github.env.TOKEN`; empty for the document. */
  readonly path: string;
  readonly message: string;
  readonly hint?: string;
}

export type KeyPath = readonly (string | number)[];

/** `servers.github.args[2]`: how people write a path into a YAML document. */
export function formatKeyPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** `berth.yaml:14:7 servers.github.env.TOKEN: must be a string (did you mean …?)` */
export function formatIssue(issue: ConfigIssue): string {
  const where = `${issue.file}:${issue.line}:${issue.col}`;
  const path = issue.path === '' ? '' : ` ${issue.path}:`;
  const hint = issue.hint === undefined ? '' : ` (${issue.hint})`;
  return `${where}${path} ${issue.message}${hint}`;
}

/** Issues sorted the way a reader walks the file: by line, then column. */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.message.localeCompare(b.message));
}

/** Thrown when a config file cannot be used; carries every issue at once. */
export class ConfigError extends BerthError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const sorted = sortIssues(issues);
    super('config_invalid', sorted.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = sorted;
  }
}
