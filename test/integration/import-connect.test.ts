// The whole way round with real parts: a Claude Desktop config holding
// server-everything is imported, berth serves it, `berth connect` prints the
// snippets, and real clients (the SDK client with the API key the snippet
// names, the MCP Inspector CLI anonymously on loopback) reach it through them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { sha256Hex } from '../../src/auth/api-key.ts';
import { importClientConfig } from '../../src/clients/import.ts';
import { renderFragment } from '../../src/clients/render.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingServer, repoRoot, startTestBerth } from '../helpers/berth.ts';

const run = promisify(execFile);
const BIN = path.join(repoRoot, 'bin/berth.js');
const INSPECTOR = path.join(repoRoot, 'node_modules/@modelcontextprotocol/inspector/cli/build/index.js');
const KEY = 'berth_import-connect-test-key-0123456789';

describe('import, serve, connect', () => {
  let b: TestBerth;
  let servers = '';

  before(async () => {
    const desktop = { mcpServers: { Everything: { command: process.execPath, args: [everythingServer, 'stdio'], env: { EVERYTHING_MODE: 'test' } } } };
    const { imported, issues } = importClientConfig('claude_desktop_config.json', JSON.stringify(desktop, null, 2), { secrets: 'auto' });
    assert.deepEqual(issues.filter((i) => i.severity === 'error'), []);
    servers = renderFragment(imported, 'claude_desktop_config.json', 'Claude Desktop').split('\nservers:\n')[1] ?? '';
    // The key first; anonymous callers on loopback (the Inspector CLI sends no headers) second.
    b = await startTestBerth(servers, `auth:\n  - type: apiKey\n    keys: [{ user: alice, sha256: "${sha256Hex(KEY)}" }]\n  - type: none\n`);
  });
  after(async () => {
    await b?.stop();
  });

  async function connect(client: string): Promise<string> {
    const result = await run(process.execPath, [BIN, 'connect', client, 'everything', '--config', b.file, '--url', b.url], { timeout: 30_000 });
    assert.match(result.stderr, /BERTH_API_KEY|asks for your berth API key/);
    assert.ok(!result.stdout.includes(sha256Hex(KEY)));
    return result.stdout;
  }

  it('imported the server under a berth name', () => {
    assert.match(servers, /^ {2}everything:\n {4}type: multi-user\n {4}runtime: command\n/);
  });

  it('the SDK client reaches the server with the Claude Code snippet and the key it names', async () => {
    const snippet = JSON.parse(await connect('claude-code')) as { mcpServers: Record<string, { url: string; headers: Record<string, string> }> };
    const entry = snippet.mcpServers['everything'];
    assert.ok(entry !== undefined);
    // What Claude Code does with `${BERTH_API_KEY}`: fill it in from its environment.
    const headers = Object.fromEntries(Object.entries(entry.headers).map(([k, v]) => [k, v.replaceAll('${BERTH_API_KEY}', KEY)]));
    const client = new Client({ name: 'import-connect', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(entry.url), { requestInit: { headers } }));
    try {
      assert.ok((await client.listTools()).tools.some((t) => t.name === 'echo'));
      const echoed = (await client.callTool({ name: 'echo', arguments: { message: 'imported' } })) as { content: { text: string }[] };
      assert.match(echoed.content.map((c) => c.text).join(''), /Echo: imported/);
    } finally {
      await client.close();
    }
    // A wrong key is refused, not taken for anonymous.
    const refused = await fetch(entry.url, { method: 'POST', headers: { 'x-api-key': 'berth_wrong', 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    assert.equal(refused.status, 401);
  });

  it('the Inspector CLI lists and calls tools at the URL of the Codex snippet', async () => {
    const snippet = await connect('codex');
    const url = /^url = "([^"]+)"$/m.exec(snippet)?.[1];
    assert.equal(url, `${b.url}/mcp/everything`);
    // Inspector 0.x appends /mcp to any URL not ending in it; berth answers at /mcp/<server>/mcp too.
    const list = await run(process.execPath, [INSPECTOR, `${url}/mcp`, '--transport', 'http', '--method', 'tools/list'], { timeout: 60_000 });
    assert.ok((JSON.parse(list.stdout) as { tools: { name: string }[] }).tools.some((t) => t.name === 'echo'));
    const call = await run(process.execPath, [INSPECTOR, `${url}/mcp`, '--transport', 'http', '--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=inspected'], { timeout: 60_000 });
    assert.match(call.stdout, /Echo: inspected/);
  });

  it('writes the key into no snippet, even when the config holds it through ${env:…}', async () => {
    const file = path.join(b.dir, 'with-key.yaml');
    writeFileSync(file, `version: 1\nauth:\n  - type: apiKey\n    keys: [{ user: bob, key: "\${env:BOB_KEY}" }]\nservers:\n${servers}`);
    for (const client of ['claude-desktop', 'claude-code', 'vscode', 'cursor', 'windsurf', 'codex', 'gemini']) {
      const result = await run(process.execPath, [BIN, 'connect', client, '--config', file], { timeout: 30_000, env: { ...process.env, BOB_KEY: KEY } });
      assert.ok(!result.stdout.includes(KEY), client);
      assert.match(result.stdout, /127\.0\.0\.1:8080\/mcp\/everything/);
    }
  });
});
