import { readFileSync } from 'node:fs';
import { API_KEY_ENV, connectSnippet } from '../clients/connect.ts';
import { formatById } from '../clients/formats.ts';
import { placeholderEnv } from '../clients/render.ts';
import { ConfigError } from '../config/issues.ts';
import { parseConfig } from '../config/load.ts';
import type { BerthConfiguration } from '../config/types.gen.ts';
import { BerthError } from '../errors.ts';
import { exitCode } from './output.ts';
import { printIssues } from './validate.ts';

export interface ConnectCommandOptions {
  readonly config: string;
  readonly url?: string;
}

/**
 * `berth connect CLIENT [SERVER…]`: what a user pastes into their MCP client
 * to reach berth's `/mcp/<server>` routes, in that client's format. The API
 * key is never written: the client asks for it or reads it from
 * BERTH_API_KEY. The config is read for its servers, listen address and
 * auth; its own `${env:…}` need not be set here.
 */
export function runConnect(client: string, servers: readonly string[], options: ConnectCommandOptions): number {
  const format = formatById(client);
  if (format?.write === undefined) throw new BerthError('connect_client_unknown', `berth connect writes for MCP clients; ${client} is not one`);
  let config: BerthConfiguration;
  try {
    config = readConfig(options.config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printIssues(err.issues);
    return exitCode.failed;
  }
  const names = Object.keys(config.servers);
  for (const name of servers) {
    if (!names.includes(name)) throw new BerthError('connect_server_unknown', `no server named ${name} in ${options.config}; its servers are: ${names.join(', ') || '(none)'}`);
  }
  const providers = config.auth ?? [];
  const apiKey = providers.some((p) => p.type === 'apiKey');
  const base = (options.url ?? baseUrl(config)).replace(/\/+$/, '');
  const snippet = connectSnippet(format, { base, servers: servers.length === 0 ? names : servers, apiKey });
  process.stdout.write(snippet ?? '');
  const err = process.stderr;
  err.write(`# ${format.label}: paste into ${format.where}\n`);
  if (apiKey && client !== 'vscode') err.write(`# set ${API_KEY_ENV} to your berth API key where ${format.label} starts (berth key new --user NAME makes one)\n`);
  if (apiKey && client === 'vscode') err.write('# VS Code asks for your berth API key when a server first starts (berth key new --user NAME makes one)\n');
  if (!apiKey && providers.some((p) => p.type === 'jwt')) err.write(`# ${format.label} signs in with OAuth: berth names its authorization server at /.well-known/oauth-protected-resource/mcp/<server>\n`);
  return exitCode.ok;
}

function readConfig(file: string): BerthConfiguration {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BerthError('config_unreadable', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}); name the config with --config`, { cause: err });
  }
  const result = parseConfig(file, text, { env: placeholderEnv(text, process.env), readFile: () => '', baseDir: '.' });
  if (!result.ok) throw new ConfigError(result.issues);
  return result.value.config as BerthConfiguration;
}

/** listen.publicUrl, else the address berth listens on (loopback for a wildcard). */
function baseUrl(config: BerthConfiguration): string {
  if (config.listen?.publicUrl !== undefined) return config.listen.publicUrl;
  const host = config.listen?.host ?? '127.0.0.1';
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${config.listen?.port ?? 8080}`;
}
