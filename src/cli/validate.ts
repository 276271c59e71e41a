import { loadConfigFile } from '../config/load.ts';
import type { ConfigIssue } from '../config/issues.ts';
import { ConfigError, formatIssue } from '../config/issues.ts';
import { exitCode, paint } from './output.ts';

/** `berth validate [FILE]`: ok, or every issue with its position. */
export function runValidate(file: string, options: { json?: boolean }): number {
  let issues: readonly ConfigIssue[] = [];
  let servers = 0;
  try {
    servers = Object.keys(loadConfigFile(file).config.servers).length;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues = err.issues;
  }
  if (options.json === true) {
    process.stdout.write(`${JSON.stringify({ ok: issues.length === 0, file, servers, issues }, null, 2)}\n`);
  } else if (issues.length === 0) {
    process.stdout.write('ok\n');
  } else {
    printIssues(issues);
  }
  return issues.length === 0 ? exitCode.ok : exitCode.failed;
}

export function printIssues(issues: readonly ConfigIssue[]): void {
  const err = process.stderr;
  for (const issue of issues) err.write(`${paint(err, 'red', 'error')} ${formatIssue(issue)}\n`);
  err.write(`${issues.length} error${issues.length === 1 ? '' : 's'}\n`);
}
