import type { ClientFormat } from './formats.ts';
import { FORMATS } from './formats.ts';
import type { HttpServer, Reference } from './model.ts';
import { envName } from './model.ts';

/** What a client needs to reach berth: where it listens, which routes, and whether it wants an API key. */
export interface ConnectTarget {
  /** berth's URL as clients reach it, without a trailing slash. */
  readonly base: string;
  readonly servers: readonly string[];
  /** An apiKey provider is configured: the snippet sends the key, asked for or read from the environment. */
  readonly apiKey: boolean;
}

/** The key, as a client asks for it (VS Code's inputs) or else reads it from BERTH_API_KEY. */
export const API_KEY: Extract<Reference, { kind: 'prompt' }> = { kind: 'prompt', id: 'berth-api-key', description: 'berth API key', secret: true, required: true };
export const API_KEY_ENV = envName(API_KEY.id);
/** berth's apiKey provider reads this header; its value has no scheme and no space, which mcp-remote's arguments need. */
const API_KEY_HEADER = 'X-API-Key';

/** berth's routes as remote servers of a client: `/mcp/<server>` over streamable HTTP. */
export function connectServers(target: ConnectTarget): HttpServer[] {
  return target.servers.map((name) => ({
    kind: 'http',
    name,
    path: [],
    transport: 'streamable-http',
    url: { parts: [`${target.base}/mcp/${encodeURIComponent(name)}`], path: [] },
    headers: target.apiKey ? [[API_KEY_HEADER, { parts: [API_KEY], path: [] }]] : [],
  }));
}

/** What a user pastes into the client, in its own format. */
export function connectSnippet(format: ClientFormat, target: ConnectTarget): string | undefined {
  return format.write?.(connectServers(target));
}

/** The snippet for every client, for the /connect page: its label, where the file is, and the text. */
export function connectSnippets(target: ConnectTarget): { label: string; where: string; text: string }[] {
  return FORMATS.flatMap((format) => {
    const text = connectSnippet(format, target);
    return text === undefined ? [] : [{ label: format.label, where: format.where, text }];
  });
}
