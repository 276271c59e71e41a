import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectSnippet, connectSnippets } from '../../src/clients/connect.ts';
import { escapeHtml, renderConnectPage } from '../../src/credentials/page.ts';
import { FORMATS } from '../../src/clients/formats.ts';
import { importClientConfig } from '../../src/clients/import.ts';
import { renderFragment } from '../../src/clients/render.ts';
import { formatIssue } from '../../src/config/issues.ts';
import { berthAround, loadWithPlaceholders } from '../helpers/clients.ts';

/** Where each client keeps the file: import tells the format by it, as it would for the user's own file. */
const FILES: Readonly<Record<string, string>> = {
  'claude-desktop': 'claude_desktop_config.json',
  'claude-code': '.mcp.json',
  vscode: '.vscode/mcp.json',
  cursor: '.cursor/mcp.json',
  windsurf: 'mcp_config.json',
  codex: 'config.toml',
  gemini: '.gemini/settings.json',
};

const BASE = 'https://mcp.example.com';
const clients = FORMATS.filter((f) => f.write !== undefined);

describe('berth connect: snippets', () => {
  it('writes for every client format, and for nothing else', () => {
    assert.deepEqual(clients.map((f) => f.id).sort(), Object.keys(FILES).sort());
  });

  for (const format of clients) {
    for (const apiKey of [true, false]) {
      it(`${format.id}${apiKey ? ', with an API key' : ''}: importing the snippet gives back the same routes`, () => {
        const snippet = connectSnippet(format, { base: BASE, servers: ['everything', 'git-hub'], apiKey }) ?? '';
        const { format: read, imported, issues } = importClientConfig(FILES[format.id] ?? '', snippet, { secrets: 'auto' });
        assert.equal(read?.id, format.id, 'told by its file name');
        assert.deepEqual(issues.filter((i) => i.severity === 'error').map(formatIssue), []);
        assert.deepEqual(
          imported.servers.map(([name, s]) => [name, s.type, s.url, s.transport]),
          ['everything', 'git-hub'].map((name) => [name, 'remote', `${BASE}/mcp/${name}`, undefined]),
        );
        for (const [, server] of imported.servers) {
          const key = server.headers?.['X-API-Key'];
          if (!apiKey) assert.equal(server.headers, undefined);
          // The key travels as a reference the client fills in: an environment variable, or a per-user credential for a prompt.
          else assert.match(String(key), format.id === 'vscode' ? /^\$\{user\.credentials\.BERTH_API_KEY\}$/ : /^\$\{env:BERTH_API_KEY\}$/);
        }
        const loaded = loadWithPlaceholders(berthAround(renderFragment(imported, 'snippet', format.label)));
        assert.ok(loaded.ok, loaded.ok ? '' : loaded.issues.map(formatIssue).join('\n'));
      });
    }
  }

  it('asks VS Code users for the key once, however many servers', () => {
    const vscode = clients.find((f) => f.id === 'vscode');
    const snippet = JSON.parse(connectSnippet(vscode ?? clients[0]!, { base: BASE, servers: ['a', 'b', 'c'], apiKey: true }) ?? '{}') as { inputs: { id: string; password: boolean }[] };
    assert.deepEqual(snippet.inputs.map((i) => [i.id, i.password]), [['berth-api-key', true]]);
  });
});

describe('the /connect page', () => {
  it('offers every client\'s snippet for its server, escaped', () => {
    const snippets = connectSnippets({ base: BASE, servers: ['github'], apiKey: true });
    assert.deepEqual(snippets.map((s) => s.label), clients.map((f) => f.label));
    const html = renderConnectPage({ server: 'github', user: 'alice', fields: [], saved: new Set(), csrf: 't', snippets });
    assert.ok(html.indexOf('<h2>Connect a client</h2>') > html.indexOf('<h1>'));
    for (const snippet of snippets) assert.ok(html.includes(`<pre>${escapeHtml(snippet.text)}</pre>`), snippet.label);
    assert.ok(html.includes(escapeHtml(`${BASE}/mcp/github`)));
    assert.ok(!renderConnectPage({ server: 'github', user: 'alice', fields: [], saved: new Set(), csrf: 't' }).includes('Connect a client'));
  });
});
