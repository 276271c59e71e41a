import type { Data } from './fields.ts';
import type { Field, HttpServer, Parts, StdioServer } from './model.ts';
import { plainText } from './model.ts';
import { shellSyntax } from './syntax.ts';

// mcp-remote is how clients without remote support (Claude Desktop) reach an
// HTTP server: `npx -y mcp-remote URL --header Name:value`. It expands
// `${VAR}` in its arguments from its own environment.

const TRANSPORTS: Readonly<Record<string, HttpServer['transport']>> = {
  'http-only': 'streamable-http',
  'http-first': 'streamable-http',
  'sse-only': 'sse',
  'sse-first': 'sse',
};

/** The remote server an mcp-remote entry reaches, or undefined when the entry is something else. */
export function fromMcpRemote(server: StdioServer): HttpServer | undefined {
  const command = plainText(server.command.parts);
  if (command === undefined || !/(^|[/\\])npx(\.cmd)?$/.test(command)) return undefined;
  const args = server.args;
  let i = 0;
  while (i < args.length && ['-y', '--yes'].includes(plainText(args[i]?.parts ?? []) ?? '')) i++;
  if (!/^mcp-remote(@.+)?$/.test(plainText(args[i]?.parts ?? []) ?? '')) return undefined;
  const url = args[i + 1];
  if (url === undefined) return undefined;
  let transport: HttpServer['transport'] = 'streamable-http';
  const headers: (readonly [string, Field])[] = [];
  for (let j = i + 2; j < args.length; j++) {
    const flag = plainText(args[j]?.parts ?? []);
    const value = args[j + 1];
    if (value === undefined) break;
    if (flag === '--transport') {
      transport = TRANSPORTS[plainText(value.parts) ?? ''] ?? transport;
      j++;
    } else if (flag === '--header') {
      const header = splitHeader(expand(value.parts, server));
      if (header !== undefined) headers.push([header[0], { parts: header[1], path: value.path }]);
      j++;
    }
  }
  return { kind: 'http', name: server.name, path: server.path, transport, url, headers };
}

/** The entry that reaches a remote server through mcp-remote; header values already in its `${VAR}` syntax. */
export function toMcpRemote(url: string, transport: HttpServer['transport'], headers: readonly (readonly [string, string])[]): Data {
  const args = ['-y', 'mcp-remote', url, ...(transport === 'sse' ? ['--transport', 'sse-only'] : []), ...headers.flatMap(([name, value]) => ['--header', `${name}:${value}`])];
  return { command: 'npx', args };
}

/** mcp-remote's own `${VAR}`, from the entry's `env` when it sets VAR, else from the environment. */
function expand(parts: Parts, server: StdioServer): Parts {
  return parts.flatMap((part) => {
    if (typeof part !== 'string') return [part];
    return shellSyntax.parse(part).flatMap((p) => {
      if (typeof p === 'string' || p.kind !== 'env') return [p];
      const set = server.env.find(([name]) => name === p.name);
      return set === undefined ? [p] : set[1].parts;
    });
  });
}

/** `Name:value` → its name and value parts. */
function splitHeader(parts: Parts): [string, Parts] | undefined {
  const first = parts[0];
  if (typeof first !== 'string') return undefined;
  const colon = first.indexOf(':');
  if (colon <= 0) return undefined;
  const rest = first.slice(colon + 1).trimStart();
  return [first.slice(0, colon).trim(), [...(rest === '' ? [] : [rest]), ...parts.slice(1)]];
}
