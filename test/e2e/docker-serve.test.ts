// berth serving through the Docker backend end to end: a container server
// and a stdio server behind `berth bridge`, both reached by the SDK client
// through berth's proxy; sessions survive a replacement; a restarted berth
// adopts the containers without restarting them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, startTestBerth, status } from '../helpers/berth.ts';
import { docker, dockerUnavailable, removeOwned, testImages, testOwner } from '../helpers/docker.ts';
import { waitFor } from '../helpers/wait.ts';

const unavailable = dockerUnavailable();
const text = (r: unknown): string => ((r as CallToolResult).content[0] as { text: string }).text;

describe('berth serve on the docker backend', { ...(unavailable === undefined ? {} : { skip: unavailable }) }, () => {
  const owner = testOwner();
  let head = '';
  const servers = (flavour: string): string => {
    const images = testImages();
    return [
      `  web:\n    type: multi-user\n    runtime: container\n    image: ${images.TEST_HTTP_IMAGE}\n    port: 8080\n    env: { FLAVOUR: ${flavour} }\n`,
      `  piped:\n    type: multi-user\n    runtime: command\n    command: node\n    args: [/app/fixtures/mcp-server.mjs, stdio]\n`,
    ].join('');
  };
  before(() => {
    head = `backend: { type: docker, owner: ${owner}, pull: never, runtimeImage: ${testImages().TEST_RUNTIME_IMAGE} }\n`;
  });
  after(() => removeOwned(owner));

  test('a full MCP session into a container and into a bridged stdio server; a replacement keeps the session', async () => {
    const b: TestBerth = await startTestBerth(servers('a'), head);
    try {
      const web = await connectClient(b.url, 'web');
      const piped = await connectClient(b.url, 'piped');
      assert.equal(text(await web.callTool({ name: 'echo', arguments: { message: 'to a container' } })), 'to a container');
      assert.equal(text(await piped.callTool({ name: 'echo', arguments: { message: 'through bridge' } })), 'through bridge');
      const before = (await status(b.url)).servers.find((s) => s.name === 'web')?.instances[0]?.id;
      b.writeConfig(servers('b'));
      await waitFor(async () => {
        const instances = (await status(b.url)).servers.find((s) => s.name === 'web')?.instances ?? [];
        return instances.length === 1 && instances[0]?.id !== before && instances[0]?.state === 'ready';
      }, { timeoutMs: 90_000, message: 'the replacement container serves alone' });
      assert.equal(text(await web.callTool({ name: 'echo', arguments: { message: 'same session' } })), 'same session');
      const gone = await docker.getContainer(before ?? '').inspect().then(() => false, () => true);
      assert.ok(gone, 'the old container was removed');
      await web.close();
      await piped.close();
    } finally {
      await b.stop();
    }
  });

  test('a restarted berth adopts running containers without restarting them', async () => {
    const first = await startTestBerth(servers('b'), head);
    const ids = await waitFor(async () => {
      const r = await status(first.url);
      const all = r.servers.flatMap((s) => s.instances.filter((i) => i.state === 'ready').map((i) => i.id));
      return all.length === 2 ? all.sort() : undefined;
    }, { timeoutMs: 90_000, message: 'both servers ready' });
    const started = await Promise.all(ids.map(async (id) => (await docker.getContainer(id).inspect()).State.StartedAt));
    await first.stop();
    const second = await startTestBerth(servers('b'), head);
    try {
      const again = await waitFor(async () => {
        const r = await status(second.url);
        const all = r.servers.flatMap((s) => s.instances.filter((i) => i.state === 'ready').map((i) => i.id));
        return all.length === 2 ? all.sort() : undefined;
      }, { timeoutMs: 60_000, message: 'adopted servers ready' });
      assert.deepEqual(again, ids, 'the same containers');
      assert.deepEqual(await Promise.all(ids.map(async (id) => (await docker.getContainer(id).inspect()).State.StartedAt)), started, 'never restarted');
      const client = await connectClient(second.url, 'web');
      assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'adopted' } })), 'adopted');
      await client.close();
    } finally {
      await second.stop();
    }
  });
});
