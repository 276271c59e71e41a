// The error a client gets when a server needs credentials it has not supplied,
// checked by the SDKs themselves: a v1 client turns -32042 into its
// UrlElicitationRequiredError, and a v2 client on 2026-07-28 fulfils the
// input_required round with a URL elicitation and retries.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { McpServer as ModernServer, createMcpHandler, inputResponse } from '@modelcontextprotocol/server';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ElicitRequestURLParamsSchema, JSONRPCErrorSchema, McpError, UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import type { CredentialPrompt } from '../../src/credentials/missing.ts';
import { connectUrlOf, credentialPromptFor, credentialPromptOf, missingCredentialsError } from '../../src/credentials/missing.ts';

const URL_ = connectUrlOf('https://mcp.example.com/', 'github');

/** A v1 server whose every tool call fails the way berth's pool answers one without credentials. */
async function callWithoutCredentials(prompt: CredentialPrompt): Promise<unknown> {
  const server = new Server({ name: 'needs-credentials', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(CallToolRequestSchema, () => {
    const missing = missingCredentialsError({ server: 'github', names: ['GITHUB_TOKEN'] }, URL_, prompt);
    assert.equal(missing.kind, 'error');
    throw new McpError(missing.error.code, missing.error.message, missing.error.data);
  });
  const client = new Client({ name: 'c', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(a), client.connect(b)]);
  try {
    await client.callTool({ name: 'search', arguments: {} });
    assert.fail('the call should have failed');
  } catch (err) {
    return err;
  } finally {
    await client.close();
  }
}

describe('missing credentials', () => {
  it('picks the prompt from the protocol version and the elicitation capability', () => {
    const cases: readonly [string, unknown, CredentialPrompt][] = [
      ['2025-06-18', { elicitation: { url: {} } }, 'message'],
      ['2025-11-25', { elicitation: {} }, 'message'],
      ['2025-11-25', { elicitation: { form: {}, url: {} } }, 'url-elicitation'],
      ['2026-07-28', { elicitation: { url: {} } }, 'input-required'],
      ['2026-07-28', { elicitation: { form: {} } }, 'message'],
      ['2026-07-28', undefined, 'message'],
    ];
    for (const [version, capabilities, expected] of cases) assert.equal(credentialPromptFor(version, capabilities), expected, `${version} ${JSON.stringify(capabilities)}`);
    assert.equal(URL_, 'https://mcp.example.com/connect/github');
  });

  it('2026-07-28: input_required only where the revision allows it (tools/call, prompts/get, resources/read)', () => {
    const _meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } };
    const cases: readonly [string, CredentialPrompt][] = [
      ['tools/call', 'input-required'],
      ['prompts/get', 'input-required'],
      ['resources/read', 'input-required'],
      ['server/discover', 'message'],
      ['tools/list', 'message'],
      ['completion/complete', 'message'],
    ];
    for (const [method, expected] of cases) assert.equal(credentialPromptOf({ jsonrpc: '2.0', id: 1, method, params: { _meta } }), expected, method);
  });

  it('2025-11-25 with URL elicitation: -32042 that the SDK client reads as UrlElicitationRequiredError', async () => {
    const missing = missingCredentialsError({ server: 'github', names: ['GITHUB_TOKEN'] }, URL_, 'url-elicitation');
    assert.equal(missing.kind, 'error');
    assert.ok(JSONRPCErrorSchema.safeParse({ jsonrpc: '2.0', id: 1, error: missing.error }).success);
    const err = await callWithoutCredentials('url-elicitation');
    assert.ok(err instanceof UrlElicitationRequiredError, String(err));
    assert.equal(err.code, -32042);
    assert.equal(err.elicitations.length, 1);
    const elicitation = ElicitRequestURLParamsSchema.parse(err.elicitations[0]);
    assert.equal(elicitation.url, URL_);
    assert.match(elicitation.message, /GITHUB_TOKEN/);
    assert.ok(elicitation.elicitationId.length > 0);
  });

  it('other clients: a plain error whose message names the URL', async () => {
    const err = await callWithoutCredentials('message');
    assert.ok(err instanceof McpError && !(err instanceof UrlElicitationRequiredError));
    assert.equal(err.code, -32000);
    assert.match(err.message, /server github needs credentials you have not supplied \(GITHUB_TOKEN\): open https:\/\/mcp\.example\.com\/connect\/github/);
    assert.deepEqual(err.data, { server: 'github', missing: ['GITHUB_TOKEN'], connectUrl: URL_ });
  });

  it('2026-07-28: an input_required result the v2 client fulfils with a URL elicitation, then retries', async () => {
    const missing = missingCredentialsError({ server: 'github', names: ['GITHUB_TOKEN'] }, URL_, 'input-required');
    assert.equal(missing.kind, 'result');
    const [key = ''] = Object.keys(missing.result.inputRequests);
    let calls = 0;
    const handler = createMcpHandler(() => {
      const server = new ModernServer({ name: 'needs-credentials', version: '1.0.0' });
      server.registerTool('search', { description: 'needs a token' }, async (ctx) => {
        calls++;
        // berth re-checks the store on the retry; here the user "saved" meanwhile.
        if (inputResponse(ctx.mcpReq.inputResponses, key).kind === 'missing') return missing.result as never;
        return { content: [{ type: 'text' as const, text: 'found' }] };
      });
      return server;
    });
    const client = new ModernClient({ name: 'modern', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: { pin: '2026-07-28' } } });
    const asked: unknown[] = [];
    client.setRequestHandler('elicitation/create' as never, (async (request: { params: unknown }) => {
      asked.push(request.params);
      return { action: 'accept' };
    }) as never);
    // No socket: the transport's fetch is the handler's own.
    const transport = new ModernTransport(new URL('http://127.0.0.1/mcp'), { fetch: (url: string | URL, init?: RequestInit) => handler.fetch(new Request(url, init)) });
    await client.connect(transport);
    try {
      const result = (await client.callTool({ name: 'search', arguments: {} })) as { content: { text: string }[] };
      assert.equal(result.content[0]?.text, 'found');
      assert.equal(calls, 2);
      assert.equal(asked.length, 1);
      assert.deepEqual(asked[0], { mode: 'url', message: 'Enter your credentials for github (GITHUB_TOKEN)', url: URL_ });
    } finally {
      await client.close();
      await handler.close();
    }
  });
});
