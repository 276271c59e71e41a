// Server-to-client requests relayed on a shared server: sampling asked of
// alice is answered only by alice's session. Bob, in his own session on the
// same instance, posts answers for every id berth could have used.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { sha256Hex } from '../../src/auth/api-key.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingYaml, startTestBerth } from '../helpers/berth.ts';

const KEYS = { alice: 'berth_alice-relay-0123456789abcdef', bob: 'berth_bob-relay-0123456789abcdefgh' };
const ACCEPT = 'application/json, text/event-stream';
const GUESSES = 400;

function text(result: unknown): string {
  return (result as { content: { text?: string }[] }).content.map((c) => c.text ?? '').join('');
}

describe('relayed server requests belong to the session they went to', () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(everythingYaml(), `auth:\n  - type: apiKey\n    keys:\n      - { user: alice, sha256: "${sha256Hex(KEYS.alice)}" }\n      - { user: bob, sha256: "${sha256Hex(KEYS.bob)}" }\n`);
  });
  after(() => b?.stop());

  test('another user\'s answers to guessed ids are ignored; the asked session\'s answer is used', async () => {
    const url = `${b.url}/mcp/everything`;
    // Bob's own session on the same shared instance.
    const post = (body: unknown, session?: string): Promise<Response> =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, 'x-api-key': KEYS.bob, 'mcp-protocol-version': '2025-11-25', ...(session === undefined ? {} : { 'mcp-session-id': session }) }, body: JSON.stringify(body) });
    const init = await post({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bob', version: '1' } } });
    assert.equal(init.status, 200);
    const bobSession = init.headers.get('mcp-session-id') ?? '';
    await init.body?.cancel();
    assert.equal((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, bobSession)).status, 202);

    let asked!: (id: unknown) => void;
    const askedFor = new Promise<unknown>((resolve) => (asked = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const alice = new Client({ name: 'alice', version: '1' }, { capabilities: { sampling: {} } });
    alice.setRequestHandler(CreateMessageRequestSchema, async (_request, extra) => {
      asked(extra.requestId);
      await released;
      return { model: 'm', role: 'assistant', content: { type: 'text', text: 'answered by alice' } };
    });
    await alice.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { 'x-api-key': KEYS.alice } } }));
    try {
      const call = alice.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } });
      const id = await askedFor;
      assert.match(String(id), /^berth-[A-Za-z0-9_-]{20,}$/, 'the relayed id is unguessable');
      // Bob answers every id berth used to hand out in sequence, and the real one, which he cannot know but might.
      for (const guess of [...Array.from({ length: GUESSES }, (_, i) => `berth-${i + 1}`), id]) {
        const res = await post({ jsonrpc: '2.0', id: guess, result: { model: 'm', role: 'assistant', content: { type: 'text', text: 'answered by bob' } } }, bobSession);
        assert.ok(res.status < 500, `bob's answer got ${res.status}`);
        await res.body?.cancel();
      }
      release();
      assert.match(text(await call), /answered by alice/);
    } finally {
      release();
      await alice.close();
    }
  });
});
