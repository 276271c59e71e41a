import { stringify } from 'smol-toml';
import type { ClientDocument } from './document.ts';
import type { Data } from './fields.ts';
import { describe, httpServer, isRecord, readField, readList, readMap, reportUnread } from './fields.ts';
import { fromMcpRemote } from './mcp-remote.ts';
import type { ClientServer, Field, HttpServer, Report } from './model.ts';
import { envName, plainText } from './model.ts';
import { literalSyntax } from './syntax.ts';

// Codex's ~/.codex/config.toml: `[mcp_servers.NAME]` tables. Codex expands no
// variables; it names environment variables instead (`env_vars`,
// `bearer_token_env_var`, `env_http_headers`).

const ROOT = 'mcp_servers';
const READ = new Set(['command', 'args', 'env', 'env_vars', 'cwd', 'url', 'bearer_token_env_var', 'http_headers', 'env_http_headers', 'enabled']);

export function readCodexServers(doc: ClientDocument, report: Report): ClientServer[] {
  const servers = isRecord(doc.data) ? doc.data[ROOT] : undefined;
  if (!isRecord(servers)) {
    report('error', [], 'import_invalid_value', `the file has no \`[${ROOT}.NAME]\` tables`);
    return [];
  }
  const out: ClientServer[] = [];
  for (const [name, entry] of Object.entries(servers)) {
    const path = [ROOT, name];
    if (!isRecord(entry)) {
      report('error', path, 'import_invalid_value', `a server must be a table, not ${describe(entry)}`);
      continue;
    }
    reportUnread(entry, path, READ, report);
    if (entry['enabled'] === false) report('warning', [...path, 'enabled'], 'import_disabled', 'disabled in Codex; imported anyway', 'remove it from the output if berth should not serve it');
    const server = entry['command'] !== undefined ? readStdio(name, path, entry, report) : readHttp(name, path, entry, report);
    if (server !== undefined) out.push(server);
  }
  return out;
}

function readStdio(name: string, path: string[], entry: Data, report: Report): ClientServer | undefined {
  const command = readField(entry['command'], [...path, 'command'], literalSyntax, report);
  const args = readList(entry['args'], [...path, 'args'], literalSyntax, report);
  const env = readMap(entry['env'], [...path, 'env'], literalSyntax, report);
  const forwarded = readList(entry['env_vars'], [...path, 'env_vars'], literalSyntax, report);
  const cwd = entry['cwd'] === undefined ? undefined : readField(entry['cwd'], [...path, 'cwd'], literalSyntax, report);
  if (command === undefined || args === undefined || env === undefined || forwarded === undefined) return undefined;
  // `env_vars` passes variables through from Codex's own environment: berth reads them from its own.
  const passed = forwarded.map((f): readonly [string, Field] => {
    const varName = plainText(f.parts) ?? '';
    return [varName, { parts: [{ kind: 'env', name: varName }], path: f.path }];
  });
  const server = { kind: 'stdio', name, path, command, args, env: [...env, ...passed], ...(cwd === undefined ? {} : { cwd }) } as const;
  return fromMcpRemote(server) ?? server;
}

function readHttp(name: string, path: string[], entry: Data, report: Report): ClientServer | undefined {
  if (entry['url'] === undefined) {
    report('error', path, 'import_incomplete', 'a server needs `command` (a local server) or `url` (a remote one)');
    return undefined;
  }
  const server = httpServer(name, path, { ...entry, headers: entry['http_headers'] }, 'url', 'streamable-http', literalSyntax, report) as HttpServer | undefined;
  const fromEnv = readMap(entry['env_http_headers'], [...path, 'env_http_headers'], literalSyntax, report);
  if (server === undefined || fromEnv === undefined) return undefined;
  const headers = [...server.headers, ...fromEnv.map(([header, f]): readonly [string, Field] => [header, { parts: [{ kind: 'env', name: plainText(f.parts) ?? '' }], path: f.path }])];
  const token = entry['bearer_token_env_var'];
  if (typeof token === 'string') headers.push(['Authorization', { parts: ['Bearer ', { kind: 'env', name: token }], path: [...path, 'bearer_token_env_var'] }]);
  return { ...server, headers };
}

/** The `[mcp_servers.*]` tables that reach the given servers; header values must be literal or one environment variable. */
export function writeCodexServers(servers: readonly HttpServer[]): string {
  const tables: Record<string, Data> = {};
  for (const server of servers) {
    const literal: Record<string, string> = {};
    const fromEnv: Record<string, string> = {};
    for (const [header, field] of server.headers) {
      const [only] = field.parts;
      if (field.parts.length === 1 && typeof only === 'object' && (only.kind === 'env' || only.kind === 'prompt')) fromEnv[header] = only.kind === 'env' ? only.name : envName(only.id);
      else literal[header] = plainText(field.parts) ?? '';
    }
    tables[server.name] = {
      url: plainText(server.url.parts) ?? '',
      ...(Object.keys(literal).length === 0 ? {} : { http_headers: literal }),
      ...(Object.keys(fromEnv).length === 0 ? {} : { env_http_headers: fromEnv }),
    };
  }
  return `${stringify({ [ROOT]: tables })}\n`;
}
