// Two users of a single-user server through the whole path: identity from API
// keys, credentials supplied through the API, each user's own instance with
// only their own values, and a credential change renewing one user's instance.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { StatusReport } from '../../src/cli/status-model.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, everythingYaml, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const KEYS = { alice: 'berth_alice-0123456789abcdef-users', bob: 'berth_bob-0123456789abcdefgh-users' } as const;
type Who = keyof typeof KEYS;

function connectAs(b: TestBerth, who: Who): Promise<Client> {
  return connectClient(b.url, 'mine', {}, { 'x-api-key': KEYS[who] });
}

async function envOf(client: Client): Promise<Record<string, string>> {
  const result = (await client.callTool({ name: 'get-env', arguments: {} })) as CallToolResult;
  return JSON.parse((result.content[0] as { text: string }).text) as Record<string, string>;
}

function save(b: TestBerth, who: Who, value: string): Promise<Response> {
  return fetch(`${b.url}/api/credentials/mine`, { method: 'PUT', headers: { 'content-type': 'application/json', 'x-api-key': KEYS[who] }, body: JSON.stringify({ API_TOKEN: value }) });
}

describe('single-user servers with per-user credentials', () => {
  let b: TestBerth;
  before(async () => {
    const head = `state: { key: "0123456789abcdef0123456789abcdef-test" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: alice, key: "${KEYS.alice}" }\n      - { user: bob, key: "${KEYS.bob}" }\n      - { user: root, groups: [admin], key: "berth_root-0123456789abcdef-users" }\n`;
    const server = everythingYaml('mine', '    env:\n      API_TOKEN: { fromUser: true, sensitive: true, description: "Your token" }\n').replace('multi-user', 'single-user');
    b = await startTestBerth(server, head);
  });
  after(() => b.stop());

  test('a user without credentials is sent to the /connect page', async () => {
    const err = await connectAs(b, 'alice').then(() => undefined, (e: unknown) => e as Error);
    assert.ok(err !== undefined, 'connecting without credentials fails');
    assert.match(err.message, /\/connect\/mine/);
    assert.match(err.message, /API_TOKEN/);
  });

  test('each user gets an own instance that sees only their own values; a change renews only theirs', async () => {
    assert.equal((await save(b, 'alice', 'alice-secret-1')).status, 200);
    assert.equal((await save(b, 'bob', 'bob-secret-1')).status, 200);
    const alice = await connectAs(b, 'alice');
    const bob = await connectAs(b, 'bob');
    assert.equal((await envOf(alice))['API_TOKEN'], 'alice-secret-1');
    assert.equal((await envOf(bob))['API_TOKEN'], 'bob-secret-1');
    const root = { 'x-api-key': 'berth_root-0123456789abcdef-users' };
    const instances = async (): Promise<Record<string, string>> => {
      const report = (await (await fetch(`${b.url}/status`, { headers: root })).json()) as StatusReport;
      // /status names a user by identity key: apiKey users are `apiKey:<name>`.
      return Object.fromEntries((report.servers[0]?.instances ?? []).filter((i) => i.state === 'ready').map((i) => [i.user?.replace(/^apiKey:/, '') ?? '', i.detail ?? '']));
    };
    const before = await instances();
    assert.deepEqual(Object.keys(before).sort(), ['alice', 'bob']);
    assert.notEqual(before['alice'], before['bob'], 'separate processes');

    assert.equal((await save(b, 'alice', 'alice-secret-2')).status, 200);
    await waitFor(async () => (await instances())['alice'] === undefined, { timeoutMs: 20_000, message: "alice's old instance gone" });
    const alice2 = await connectAs(b, 'alice');
    assert.equal((await envOf(alice2))['API_TOKEN'], 'alice-secret-2');
    const after = await instances();
    assert.equal(after['bob'], before['bob'], "bob's instance was not touched");
    assert.notEqual(after['alice'], before['alice']);
    assert.equal((await envOf(bob))['API_TOKEN'], 'bob-secret-1');
    await Promise.all([alice.close().catch(() => undefined), alice2.close(), bob.close()]);
  });
});
