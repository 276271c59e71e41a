// /readyz on a berth serving through the Docker backend: not ready while a
// shared container server has not answered initialize (the containers start
// after berth listens), ready once every one is ready or has had its verdict.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { startTestBerth, status } from '../helpers/berth.ts';
import { dockerUnavailable, removeOwned, testImages, testOwner } from '../helpers/docker.ts';
import { waitFor } from '../helpers/wait.ts';

const unavailable = dockerUnavailable();

interface Probe {
  readonly status: number;
  readonly notReady: readonly string[];
}

async function readyz(url: string): Promise<Probe> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, notReady: ((await res.json()) as { notReady: string[] }).notReady };
}

describe('/readyz on the docker backend', { ...(unavailable === undefined ? {} : { skip: unavailable }) }, () => {
  const owner = testOwner();
  after(() => removeOwned(owner));

  test('503 until every shared container server is ready or has given up, then 200 naming the one that gave up', async () => {
    const images = testImages();
    const head = `backend: { type: docker, owner: ${owner}, pull: never, runtimeImage: ${images.TEST_RUNTIME_IMAGE} }\n`;
    // `mute` runs and never listens: it cannot be ready before its startup timeout says so.
    const servers =
      `  web:\n    type: multi-user\n    runtime: container\n    image: ${images.TEST_HTTP_IMAGE}\n    port: 8080\n` +
      `  mute:\n    type: multi-user\n    runtime: command\n    command: node\n    args: ["-e", "setInterval(() => {}, 1000)"]\n    transport: streamable-http\n    startupTimeout: 20s\n`;
    const b = await startTestBerth(servers, head);
    try {
      const first = await readyz(b.url);
      assert.equal(first.status, 503, `not ready while mute starts: ${JSON.stringify(first)}`);
      assert.ok(first.notReady.includes('mute'));
      const seen: Probe[] = [first];
      const settled = await waitFor(async () => {
        const probe = await readyz(b.url);
        seen.push(probe);
        return probe.status === 200 ? probe : undefined;
      }, { timeoutMs: 60_000, intervalMs: 100, message: 'ready once mute gave up' });
      assert.deepEqual(settled.notReady, ['mute'], 'web ready, mute named');
      assert.ok(seen.slice(0, -1).every((p) => p.status === 503), 'never ready before');
      const report = await status(b.url);
      assert.equal(report.servers.find((s) => s.name === 'web')?.instances[0]?.state, 'ready');
    } finally {
      await b.stop();
    }
  });

  test('a 200 never lists a server: with only good servers, ready means all of them are', async () => {
    const images = testImages();
    const head = `backend: { type: docker, owner: ${owner}, pull: never, runtimeImage: ${images.TEST_RUNTIME_IMAGE} }\n`;
    const b = await startTestBerth(
      `  web:\n    type: multi-user\n    runtime: container\n    image: ${images.TEST_HTTP_IMAGE}\n    port: 8080\n` +
        `  piped:\n    type: multi-user\n    runtime: command\n    command: node\n    args: [/app/fixtures/mcp-server.mjs, stdio]\n`,
      head,
    );
    try {
      const seen: Probe[] = [];
      await waitFor(async () => {
        const probe = await readyz(b.url);
        seen.push(probe);
        return probe.status === 200;
      }, { timeoutMs: 60_000, intervalMs: 50, message: 'ready' });
      assert.deepEqual(seen.filter((p) => p.status === 200), [{ status: 200, notReady: [] }], JSON.stringify(seen));
    } finally {
      await b.stop();
    }
  });
});
