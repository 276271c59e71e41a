import type { KeyPath } from '../config/issues.ts';
import type { ClientServer, Field, Fields, HttpServer, Report } from './model.ts';
import type { VariableSyntax } from './syntax.ts';

// Reading the pieces every client format shares (strings, lists, maps of
// strings) out of parsed data, with issues at their positions.

export type Data = Readonly<Record<string, unknown>>;

export function isRecord(value: unknown): value is Data {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A scalar as a client reads it: strings as written, numbers and booleans as their text. */
export function readField(value: unknown, path: KeyPath, syntax: VariableSyntax, report: Report): Field | undefined {
  if (typeof value === 'string') return { parts: syntax.parse(value), path };
  if (typeof value === 'number' || typeof value === 'boolean') return { parts: [String(value)], path };
  report('error', path, 'import_invalid_value', `must be a string, not ${describe(value)}`);
  return undefined;
}

export function readList(value: unknown, path: KeyPath, syntax: VariableSyntax, report: Report): Field[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    report('error', path, 'import_invalid_value', `must be a list of strings, not ${describe(value)}`);
    return undefined;
  }
  const out: Field[] = [];
  for (const [i, item] of value.entries()) {
    const field = readField(item, [...path, i], syntax, report);
    if (field === undefined) return undefined;
    out.push(field);
  }
  return out;
}

export function readMap(value: unknown, path: KeyPath, syntax: VariableSyntax, report: Report): Fields | undefined {
  if (value === undefined) return [];
  if (!isRecord(value)) {
    report('error', path, 'import_invalid_value', `must be a mapping of names to strings, not ${describe(value)}`);
    return undefined;
  }
  const out: (readonly [string, Field])[] = [];
  for (const [key, item] of Object.entries(value)) {
    const field = readField(item, [...path, key], syntax, report);
    if (field === undefined) return undefined;
    out.push([key, field]);
  }
  return out;
}

/** A remote entry, once its URL and transport are known. */
export function httpServer(name: string, path: KeyPath, entry: Data, urlKey: string, transport: HttpServer['transport'], syntax: VariableSyntax, report: Report): ClientServer | undefined {
  const url = readField(entry[urlKey], [...path, urlKey], syntax, report);
  const headers = readMap(entry['headers'], [...path, 'headers'], syntax, report);
  if (url === undefined || headers === undefined) return undefined;
  return { kind: 'http', name, path, transport, url, headers };
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : `a ${typeof value}`;
}

/** Keys berth has nothing for (tool filters, timeouts, auto-approval): named, so nothing is dropped unseen. */
export function reportUnread(entry: Data, path: KeyPath, read: ReadonlySet<string>, report: Report): void {
  for (const key of Object.keys(entry)) {
    if (!read.has(key)) report('warning', [...path, key], 'import_ignored', `\`${key}\` is not imported: berth has no setting for it`, undefined, 'key');
  }
}
