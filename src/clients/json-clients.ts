import type { KeyPath } from '../config/issues.ts';
import type { ClientDocument } from './document.ts';
import type { Data } from './fields.ts';
import { describe, httpServer, isRecord, readField, readList, readMap, reportUnread } from './fields.ts';
import { fromMcpRemote, toMcpRemote } from './mcp-remote.ts';
import type { ClientServer, HttpServer, Parts, Reference, Report } from './model.ts';
import { envName } from './model.ts';
import type { VariableSyntax } from './syntax.ts';

type Transport = HttpServer['transport'];

/**
 * What tells one JSON client's config from another's: the key its servers sit
 * under, where a remote server's URL goes, and its variable syntax. Claude
 * Desktop, Claude Code, VS Code, Cursor, Windsurf and Gemini CLI differ in
 * nothing else that berth reads or writes.
 */
export interface JsonDialect {
  readonly root: 'mcpServers' | 'servers';
  /** A key the whole document may also sit under: VS Code's user settings.json keeps it in `mcp`. */
  readonly section?: string;
  /** The variable syntax of one document (VS Code's depends on the document's `inputs`). */
  syntax(data: Data, report: Report): VariableSyntax;
  /** The transport a remote entry speaks, and which key holds its URL; undefined when it has none. */
  remote(entry: Data): { readonly urlKey: string; readonly transport: Transport } | undefined;
  /** How the client writes a remote entry; undefined when it cannot, and servers are reached through mcp-remote. */
  readonly write: ((url: string, transport: Transport) => Data) | undefined;
  /** How the client asks its user for a value (VS Code's `${input:…}`), when it can. */
  readonly prompt?: (ref: Extract<Reference, { kind: 'prompt' }>) => { readonly text: string; readonly input: Data };
}

/** Reads every server of a JSON client config. */
export function readJsonServers(dialect: JsonDialect, doc: ClientDocument, reportAt: Report): ClientServer[] {
  if (!isRecord(doc.data)) {
    reportAt('error', [], 'import_invalid_value', `the file must be a JSON object with \`${dialect.root}\`, not ${describe(doc.data)}`);
    return [];
  }
  const section = dialect.section === undefined || doc.data[dialect.root] !== undefined ? undefined : doc.data[dialect.section];
  const data = isRecord(section) ? section : doc.data;
  const report: Report = data === doc.data ? reportAt : (severity, path, ...rest) => reportAt(severity, [dialect.section ?? '', ...path], ...rest);
  const servers = data[dialect.root];
  if (!isRecord(servers)) {
    report('error', servers === undefined ? [] : [dialect.root], 'import_invalid_value', `\`${dialect.root}\` must map server names to servers`);
    return [];
  }
  const syntax = dialect.syntax(data, report);
  const out: ClientServer[] = [];
  for (const [name, entry] of Object.entries(servers)) {
    const path = [dialect.root, name];
    if (!isRecord(entry)) {
      report('error', path, 'import_invalid_value', `a server must be a mapping, not ${describe(entry)}`);
      continue;
    }
    const server = readEntry(dialect, name, path, entry, syntax, report);
    if (server !== undefined) out.push(server);
  }
  return out;
}

/** Keys some JSON client gives a server, all read below. */
const READ = new Set(['command', 'args', 'env', 'cwd', 'type', 'url', 'serverUrl', 'httpUrl', 'headers', 'envFile']);

function readEntry(dialect: JsonDialect, name: string, path: KeyPath, entry: Data, syntax: VariableSyntax, report: Report): ClientServer | undefined {
  reportUnread(entry, path, READ, report);
  if (entry['envFile'] !== undefined) report('warning', [...path, 'envFile'], 'import_ignored', '`envFile` is not imported: berth reads no env files', 'declare the variables the server needs under `env`');
  if (entry['command'] !== undefined) {
    const command = readField(entry['command'], [...path, 'command'], syntax, report);
    const args = readList(entry['args'], [...path, 'args'], syntax, report);
    const env = readMap(entry['env'], [...path, 'env'], syntax, report);
    const cwd = entry['cwd'] === undefined ? undefined : readField(entry['cwd'], [...path, 'cwd'], syntax, report);
    if (command === undefined || args === undefined || env === undefined || (entry['cwd'] !== undefined && cwd === undefined)) return undefined;
    const server = { kind: 'stdio', name, path, command, args, env, ...(cwd === undefined ? {} : { cwd }) } as const;
    return fromMcpRemote(server) ?? server;
  }
  const remote = dialect.remote(entry);
  if (remote === undefined) {
    report('error', path, 'import_incomplete', 'a server needs `command` (a local server) or a URL (a remote one)');
    return undefined;
  }
  return httpServer(name, path, entry, remote.urlKey, remote.transport, syntax, report);
}

/** A client config holding the given remote servers, as the user pastes it. */
export function writeJsonServers(dialect: JsonDialect, syntax: VariableSyntax, servers: readonly HttpServer[]): string {
  const inputs = new Map<string, Data>();
  const text = (parts: Parts, env: (name: string) => string): string =>
    parts
      .map((p) => {
        if (typeof p === 'string') return p;
        if (p.kind === 'prompt' && dialect.prompt !== undefined) {
          const { text: ref, input } = dialect.prompt(p);
          inputs.set(p.id, input);
          return ref;
        }
        if (p.kind === 'prompt' || p.kind === 'env') return env(p.kind === 'env' ? p.name : envName(p.id));
        throw new Error(`connect writes only env and prompt references, not ${p.kind}`);
      })
      .join('');
  const entries: Record<string, Data> = {};
  for (const server of servers) {
    const url = text(server.url.parts, () => '');
    if (dialect.write === undefined || syntax.env === undefined) {
      entries[server.name] = toMcpRemote(url, server.transport, server.headers.map(([name, field]) => [name, text(field.parts, (n) => `\${${n}}`)]));
      continue;
    }
    const env = syntax.env;
    const headers = Object.fromEntries(server.headers.map(([name, field]) => [name, text(field.parts, env)]));
    entries[server.name] = { ...dialect.write(url, server.transport), ...(server.headers.length === 0 ? {} : { headers }) };
  }
  const document = inputs.size === 0 ? { [dialect.root]: entries } : { inputs: [...inputs.values()], [dialect.root]: entries };
  return `${JSON.stringify(document, null, 2)}\n`;
}
