import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { importClientConfig } from '../clients/import.ts';
import type { ImportIssue } from '../clients/model.ts';
import { mergeInto, renderFragment } from '../clients/render.ts';
import type { SecretPolicy } from '../clients/to-berth.ts';
import { formatIssue } from '../config/issues.ts';
import { BerthError } from '../errors.ts';
import { exitCode, paint } from './output.ts';
import { printIssues } from './validate.ts';

export interface ImportCommandOptions {
  readonly format?: string;
  readonly into?: string;
  readonly secrets: SecretPolicy;
}

const NEW_FILE = 'version: 1\nservers:\n';

/**
 * `berth import FILE`: the servers of a client's MCP config as berth servers,
 * printed as a `servers:` fragment or added to a berth.yaml. Issues go to
 * stderr with their positions; a server that cannot be imported is left out
 * of the fragment and named, and nothing is written to --into.
 */
export function runImport(file: string, options: ImportCommandOptions): number {
  const outcome = importClientConfig(file, readInput(file), options);
  printImportIssues(outcome.issues);
  const failed = outcome.issues.some((i) => i.severity === 'error');
  if (outcome.format === undefined) return exitCode.failed;
  const { servers } = outcome.imported;
  if (options.into === undefined) {
    process.stdout.write(renderFragment(outcome.imported, path.basename(file), outcome.format.label));
    return failed ? exitCode.failed : exitCode.ok;
  }
  if (failed) {
    process.stderr.write(`berth: nothing written to ${options.into}: fix the errors above, or import to stdout to take the servers that could be read\n`);
    return exitCode.failed;
  }
  const target = options.into;
  const current = existsSync(target) ? readInput(target) : NEW_FILE;
  const merged = mergeInto(target, current, servers);
  if (!merged.ok) {
    printIssues(merged.issues);
    process.stderr.write(`berth: nothing written to ${target}\n`);
    return exitCode.failed;
  }
  writeAtomically(target, merged.text);
  process.stderr.write(`added ${servers.length} server${servers.length === 1 ? '' : 's'} from ${file} (${outcome.format.label}) to ${target}\n`);
  return exitCode.ok;
}

function printImportIssues(issues: readonly ImportIssue[]): void {
  const err = process.stderr;
  for (const issue of issues) {
    const label = issue.severity === 'error' ? paint(err, 'red', 'error') : paint(err, 'yellow', 'warning');
    err.write(`${label} ${formatIssue(issue)}\n`);
  }
}

function readInput(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BerthError('import_unreadable', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause: err });
  }
}

/** A temp file beside the target, renamed over it: a watching berth never reads half a file. */
function writeAtomically(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.import-${process.pid}`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}
