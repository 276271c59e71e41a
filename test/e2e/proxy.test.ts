// berth serving real MCP servers to the real SDK client: every message kind
// the upstream offers must reach the client intact, in both directions.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, everythingYaml, fixturesBin, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const uvxServer = `  py:
    type: multi-user
    runtime: uvx
    package: berth-echo-server
    env:
      PATH: ${JSON.stringify(`${fixturesBin}:${process.env['PATH'] ?? ''}`)}
`;

function text(result: unknown): string {
  const content = (result as { content: { type: string; text?: string }[] }).content;
  return content.map((c) => c.text ?? '').join('');
}

describe('proxying stdio servers to the SDK client', () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(everythingYaml() + uvxServer);
  });
  after(() => b.stop());

  test('tools, resources and prompts pass through', async () => {
    const client = await connectClient(b.url, 'everything');
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'echo'), 'echo tool listed');
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'hello berth' } })), 'Echo: hello berth');
    assert.match(text(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } })), /42/);
    const resources = await client.listResources();
    assert.ok(resources.resources.length > 0);
    const first = resources.resources[0];
    assert.ok(first !== undefined);
    const read = await client.readResource({ uri: first.uri });
    assert.equal(read.contents[0]?.uri, first.uri);
    const prompts = await client.listPrompts();
    const simple = prompts.prompts.find((p) => p.name === 'simple-prompt');
    assert.ok(simple, `simple-prompt in ${prompts.prompts.map((p) => p.name).join(',')}`);
    const prompt = await client.getPrompt({ name: 'simple-prompt' });
    assert.ok(prompt.messages.length > 0);
    await client.close();
  });

  test('progress notifications reach the caller with its own token', async () => {
    const client = await connectClient(b.url, 'everything');
    const seen: number[] = [];
    const result = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } }, undefined, {
      onprogress: (p) => seen.push(p.progress),
    });
    assert.match(text(result), /completed/i);
    assert.deepEqual(seen, [1, 2, 3]);
    await client.close();
  });

  test('server-initiated sampling, elicitation and roots go to the calling client', async () => {
    const client = new Client({ name: 'berth-test', version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: {}, roots: {} } });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({ model: 'test-model', role: 'assistant', content: { type: 'text', text: 'sampled by the client' } }));
    client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'Ada', check: true, email: 'ada@example.com', integer: 1, number: 1.5, untitledSingleSelectEnum: 'option1', titledSingleSelectEnum: 'value1', legacyTitledEnum: 'opt1', untitledMultipleSelectEnum: ['option1'], titledMultipleSelectEnum: ['value1'] } }));
    client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///work/berth-root', name: 'root' }] }));
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    await client.connect(new StreamableHTTPClientTransport(new URL(`${b.url}/mcp/everything`)));
    const sampled = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } });
    assert.match(text(sampled), /sampled by the client/);
    const elicited = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
    assert.match(text(elicited), /Ada/);
    const roots = await client.callTool({ name: 'get-roots-list', arguments: {} });
    assert.match(text(roots), /berth-root/);
    await client.close();
  });

  test('concurrent sessions on one shared instance never see each other', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => connectClient(b.url, 'everything')));
    const results = await Promise.all(
      clients.flatMap((c, i) => [1, 2, 3, 4, 5].map((j) => c.callTool({ name: 'echo', arguments: { message: `c${i}-m${j}` } }).then((r) => [`c${i}-m${j}`, text(r)] as const))),
    );
    for (const [sent, got] of results) assert.equal(got, `Echo: ${sent}`);
    const status = (await (await fetch(`${b.url}/status`)).json()) as { servers: { name: string; instances: unknown[] }[] };
    assert.equal(status.servers.find((s) => s.name === 'everything')?.instances.length, 1, 'one shared instance');
    await Promise.all(clients.map((c) => c.close()));
  });

  test('logging notifications are forwarded', async () => {
    const client = await connectClient(b.url, 'everything');
    const messages: unknown[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void messages.push(n.params));
    await client.setLoggingLevel('debug');
    await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    await waitFor(() => messages.length > 0, { timeoutMs: 15_000, message: 'a log notification' });
    await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    await client.close();
  });

  test('a uvx (PyPI) server runs through the uvx runtime', async () => {
    const client = await connectClient(b.url, 'py');
    const tools = await client.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name), ['echo']);
    assert.match(text(await client.callTool({ name: 'echo', arguments: { text: 'from python' } })), /from python/);
    await client.close();
  });

  test('legacy HTTP+SSE clients are served at /sse/<server>', async () => {
    const client = new Client({ name: 'old-client', version: '1.0.0' });
    await client.connect(new SSEClientTransport(new URL(`${b.url}/sse/everything`)));
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'over sse' } })), 'Echo: over sse');
    await client.close();
  });
});
