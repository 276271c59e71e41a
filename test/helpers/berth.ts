import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import type { Berth, ServeOptions } from '../../src/cli/serve.ts';
import type { StatusReport } from '../../src/cli/status-model.ts';
import { startBerth } from '../../src/cli/serve.ts';
import type { Logger } from '../../src/observe/log.ts';
import { silentLogger } from '../../src/observe/log.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The MCP reference server, run straight from node_modules (no npx round trip). */
export const everythingServer = path.join(repoRoot, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
export const fixturesBin = path.join(repoRoot, 'test/fixtures/bin');

/** YAML for a multi-user server-everything on stdio. */
export function everythingYaml(name = 'everything', extra = ''): string {
  return `  ${name}:
    type: multi-user
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(everythingServer)}, stdio]
${extra}`;
}

/** YAML for a single-user server-everything that asks each user for a secret NOTES_TOKEN. */
export const NOTES_YAML = `  notes:
    type: single-user
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(everythingServer)}, stdio]
    env:
      NOTES_TOKEN: { fromUser: true, sensitive: true }
`;

export interface TestBerth {
  readonly berth: Berth;
  readonly url: string;
  readonly dir: string;
  readonly file: string;
  /** Replaces the config the way editors do: write a temp file, rename over. `head` defaults to the one berth started with. */
  writeConfig(servers: string, head?: string): void;
  stop(): Promise<void>;
}

export function configText(servers: string, head = ''): string {
  const listen = /^listen:/m.test(head) ? '' : 'listen: { host: 127.0.0.1, port: 0 }\n';
  return `version: 1\n${listen}${head}servers:\n${servers}`;
}

/** Starts berth in-process on a config in a fresh temp dir, on a free port (or `serve.port`). */
export async function startTestBerth(servers: string, head = '', options: { logger?: Logger; serve?: ServeOptions } = {}): Promise<TestBerth> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-test-'));
  const file = path.join(dir, 'berth.yaml');
  writeFileSync(file, configText(servers, head));
  const berth = await startBerth(file, { port: 0, ...options.serve }, options.logger ?? silentLogger());
  return {
    berth,
    url: berth.url,
    dir,
    file,
    writeConfig(next: string, nextHead = head) {
      const tmp = path.join(dir, `.berth.yaml.${process.hrtime.bigint()}`);
      writeFileSync(tmp, configText(next, nextHead));
      renameSync(tmp, file);
    },
    async stop() {
      await berth.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A streamable-HTTP upstream that answers every POST and records the headers it saw. */
export async function recordingUpstream(): Promise<{ url: string; seen: IncomingHttpHeaders[]; server: Server }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, seen, server };
}

/** A port nothing listens on right now, for upstreams that need one chosen up front. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** An SDK client connected over streamable HTTP to /mcp/<server>, sending `headers` (a caller's key, say) on every request. */
export async function connectClient(url: string, server: string, capabilities: ClientCapabilities = {}, headers: Readonly<Record<string, string>> = {}): Promise<Client> {
  const client = new Client({ name: 'berth-test', version: '1.0.0' }, { capabilities });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp/${server}`), { requestInit: { headers: { ...headers } } }));
  return client;
}

/** The running berth's /status document. */
export async function status(url: string): Promise<StatusReport> {
  return (await (await fetch(`${url}/status`)).json()) as StatusReport;
}
