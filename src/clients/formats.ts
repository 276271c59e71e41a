import { readCodexServers, writeCodexServers } from './codex.ts';
import type { ClientDocument } from './document.ts';
import type { Data } from './fields.ts';
import { isRecord } from './fields.ts';
import type { JsonDialect } from './json-clients.ts';
import { readJsonServers, writeJsonServers } from './json-clients.ts';
import type { ClientServer, HttpServer, Reference, Report } from './model.ts';
import { isRegistryShape, readRegistryServers } from './registry.ts';
import type { VariableSyntax } from './syntax.ts';
import { dollarSyntax, editorSyntax, literalSyntax, shellSyntax } from './syntax.ts';

/** One config format berth reads (`berth import`) and, for clients, writes (`berth connect`). */
export interface ClientFormat {
  readonly id: string;
  readonly label: string;
  /** Where the client keeps the file, for help and docs. */
  readonly where: string;
  /** Whether a file of this path is this format's. */
  named(file: string): boolean;
  /** Whether parsed data looks like this format, when the name does not tell. */
  shaped(data: unknown): boolean;
  read(doc: ClientDocument, report: Report): ClientServer[];
  /** What a user pastes to reach the given servers; undefined for formats that are not a client. */
  readonly write: ((servers: readonly HttpServer[]) => string) | undefined;
}

type Transport = HttpServer['transport'];

/** `type: sse` or `http`/`streamable-http`, as Claude Code, VS Code and Cursor write it. */
function byType(entry: Data, urlKey = 'url'): { urlKey: string; transport: Transport } | undefined {
  return entry[urlKey] === undefined ? undefined : { urlKey, transport: entry['type'] === 'sse' ? 'sse' : 'streamable-http' };
}

const typed = (url: string, transport: Transport): Data => ({ type: transport === 'sse' ? 'sse' : 'http', url });
const constant = (syntax: VariableSyntax) => (): VariableSyntax => syntax;

/** VS Code's `${input:id}` names one of the document's `inputs`, asked for when the server starts. */
function vscodeSyntax(data: Data, report: Report): VariableSyntax {
  const inputs = new Map<string, Extract<Reference, { kind: 'prompt' }>>();
  (Array.isArray(data['inputs']) ? data['inputs'] : []).forEach((input, i) => {
    if (!isRecord(input) || typeof input['id'] !== 'string') return;
    if (input['type'] !== 'promptString' && input['type'] !== 'pickString') {
      report('warning', ['inputs', i, 'type'], 'import_input_unsupported', `input type ${String(input['type'])} is asked as text`);
    }
    const description = typeof input['description'] === 'string' ? { description: input['description'] } : {};
    const fallback = typeof input['default'] === 'string' ? { fallback: input['default'] } : {};
    inputs.set(input['id'], { kind: 'prompt', id: input['id'], secret: input['password'] === true, required: true, ...description, ...fallback });
  });
  return editorSyntax('VS Code', (scheme, arg, text) => {
    if (scheme !== 'input') return undefined;
    return inputs.get(arg) ?? { kind: 'unsupported', text, why: `no input with id \`${arg}\` in \`inputs\`` };
  });
}

const vscodePrompt: NonNullable<JsonDialect['prompt']> = (ref) => ({
  text: `\${input:${ref.id}}`,
  input: { type: 'promptString', id: ref.id, description: ref.description ?? ref.id, password: ref.secret },
});

const cursorSyntax = editorSyntax('Cursor', (scheme) => (scheme === 'pathSeparator' || scheme === '/' ? '/' : undefined));
const windsurfSyntax = editorSyntax('Windsurf', (scheme, arg) => (scheme === 'file' && arg !== '' ? { kind: 'file', path: arg } : undefined));

function json(dialect: JsonDialect, syntaxForWrite: VariableSyntax): Pick<ClientFormat, 'read' | 'write'> {
  return { read: (doc, report) => readJsonServers(dialect, doc, report), write: (servers) => writeJsonServers(dialect, syntaxForWrite, servers) };
}

/** Entries of a `mcpServers` document, for telling clients apart by shape. */
function entries(data: unknown): Data[] {
  const servers = isRecord(data) ? data['mcpServers'] : undefined;
  return isRecord(servers) ? Object.values(servers).filter(isRecord) : [];
}

const path = (pattern: RegExp) => (file: string): boolean => pattern.test(file.replaceAll('\\', '/'));

/** Every format, in the order auto-detection tries them. */
export const FORMATS: readonly ClientFormat[] = [
  {
    id: 'registry',
    label: 'MCP Registry server.json',
    where: 'server.json, or a registry listing (GET /v0/servers)',
    named: path(/(^|\/)server\.json$/),
    shaped: isRegistryShape,
    read: readRegistryServers,
    write: undefined,
  },
  {
    id: 'vscode',
    label: 'VS Code',
    where: '.vscode/mcp.json, or the user profile mcp.json',
    named: path(/(^|\/)\.vscode\/mcp\.json$/),
    shaped: (data) => isRecord(data) && (isRecord(data['servers']) || Array.isArray(data['inputs']) || (isRecord(data['mcp']) && isRecord(data['mcp']['servers']))),
    ...json({ root: 'servers', section: 'mcp', syntax: vscodeSyntax, remote: (e) => byType(e), write: typed, prompt: vscodePrompt }, vscodeSyntax({}, () => undefined)),
  },
  {
    id: 'codex',
    label: 'Codex',
    where: '~/.codex/config.toml',
    named: path(/\.toml$/),
    shaped: (data) => isRecord(data) && isRecord(data['mcp_servers']),
    read: readCodexServers,
    write: writeCodexServers,
  },
  {
    id: 'claude-desktop',
    label: 'Claude Desktop',
    where: 'claude_desktop_config.json (Settings → Developer → Edit Config)',
    named: path(/(^|\/)claude_desktop_config\.json$/),
    shaped: () => false,
    ...json({ root: 'mcpServers', syntax: constant(literalSyntax), remote: (e) => byType(e), write: undefined }, literalSyntax),
  },
  {
    id: 'claude-code',
    label: 'Claude Code',
    where: '.mcp.json in the project, or ~/.claude.json',
    named: path(/(^|\/)\.(mcp|claude)\.json$/),
    shaped: (data) => entries(data).some((e) => ['stdio', 'http', 'sse'].includes(String(e['type']))),
    ...json({ root: 'mcpServers', syntax: constant(shellSyntax), remote: (e) => byType(e), write: typed }, shellSyntax),
  },
  {
    id: 'cursor',
    label: 'Cursor',
    where: '.cursor/mcp.json in the project, or ~/.cursor/mcp.json',
    named: path(/(^|\/)\.cursor\/mcp\.json$/),
    shaped: () => false,
    ...json({ root: 'mcpServers', syntax: constant(cursorSyntax), remote: (e) => byType(e), write: (url) => ({ url }) }, cursorSyntax),
  },
  {
    id: 'windsurf',
    label: 'Windsurf',
    where: '~/.codeium/windsurf/mcp_config.json',
    named: path(/(^|\/)(mcp_config\.json|windsurf\/.*\.json)$/),
    shaped: (data) => entries(data).some((e) => e['serverUrl'] !== undefined),
    ...json({ root: 'mcpServers', syntax: constant(windsurfSyntax), remote: (e) => byType(e, e['serverUrl'] === undefined ? 'url' : 'serverUrl'), write: (serverUrl) => ({ serverUrl }) }, windsurfSyntax),
  },
  {
    id: 'gemini',
    label: 'Gemini CLI',
    where: '.gemini/settings.json in the project, or ~/.gemini/settings.json',
    named: path(/(^|\/)\.gemini\/settings\.json$/),
    shaped: (data) => entries(data).some((e) => ['httpUrl', 'trust', 'includeTools', 'excludeTools', 'timeout'].some((k) => e[k] !== undefined)),
    ...json(
      {
        root: 'mcpServers',
        syntax: constant(dollarSyntax),
        remote: (e) => (e['httpUrl'] !== undefined ? { urlKey: 'httpUrl', transport: 'streamable-http' } : e['url'] !== undefined ? { urlKey: 'url', transport: e['type'] === 'http' ? 'streamable-http' : 'sse' } : undefined),
        write: (url, transport) => (transport === 'sse' ? { url } : { httpUrl: url }),
      },
      dollarSyntax,
    ),
  },
];

export function formatById(id: string): ClientFormat | undefined {
  return FORMATS.find((f) => f.id === id);
}

/**
 * The format of a file: by its name, else by its shape. A `mcpServers`
 * document that no client's own keys tell apart is read as Claude Desktop's,
 * the plainest of them (its strings hold no variables), and said to be a guess.
 */
export function detectFormat(file: string, data: unknown): { format: ClientFormat; guessed: boolean } | undefined {
  const told = FORMATS.find((f) => f.named(file)) ?? FORMATS.find((f) => f.shaped(data));
  if (told !== undefined) return { format: told, guessed: false };
  const plainest = formatById('claude-desktop');
  return plainest !== undefined && isRecord(data) && isRecord(data['mcpServers']) ? { format: plainest, guessed: true } : undefined;
}
