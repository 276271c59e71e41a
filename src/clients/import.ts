import { readClientDocument } from './document.ts';
import type { ClientFormat } from './formats.ts';
import { detectFormat, formatById, FORMATS } from './formats.ts';
import type { ImportIssue } from './model.ts';
import { reporter } from './model.ts';
import type { Imported, SecretPolicy } from './to-berth.ts';
import { toBerthServers } from './to-berth.ts';

export interface ImportOutcome {
  /** The format read, or undefined when the file could not be read or told apart. */
  readonly format: ClientFormat | undefined;
  readonly imported: Imported;
  /** Errors (a server or the file left out) and warnings (what was changed), in file order. */
  readonly issues: readonly ImportIssue[];
}

const NOTHING: Imported = { servers: [], skipped: [] };

/** Reads a client config and turns it into berth servers. Pure: the caller reads the file. */
export function importClientConfig(file: string, text: string, options: { readonly format?: string; readonly secrets: SecretPolicy }): ImportOutcome {
  const read = readClientDocument(file, text);
  if (!read.ok) return { format: undefined, imported: NOTHING, issues: read.issues.map((i) => ({ ...i, severity: 'error' })) };
  const detected = options.format === undefined ? detectFormat(file, read.doc.data) : undefined;
  const format = detected?.format ?? (options.format === undefined ? undefined : formatById(options.format));
  if (format === undefined) {
    const issue: ImportIssue = {
      severity: 'error',
      code: 'import_format_unknown',
      file,
      line: 1,
      col: 1,
      path: '',
      message: 'cannot tell which client this file is for',
      hint: `name it with --format: ${FORMATS.map((f) => f.id).join(', ')}`,
    };
    return { format: undefined, imported: NOTHING, issues: [issue] };
  }
  const issues: ImportIssue[] = [];
  const report = reporter(file, read.doc.positions, issues);
  if (detected?.guessed === true) {
    const others = FORMATS.filter((f) => f.id !== format.id && f.write !== undefined).map((f) => f.id);
    report('warning', [], 'import_format_guessed', `read as ${format.label}'s (strings taken as written): neither the file's name nor its keys say which client it is for`, `if it is another client's, name it: --format ${others.join(', ')}`);
  }
  const imported = toBerthServers(format.read(read.doc, report), options.secrets, report);
  return { format, imported, issues: [...issues].sort((a, b) => a.line - b.line || a.col - b.col) };
}
