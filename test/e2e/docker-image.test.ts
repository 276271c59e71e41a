// berth in its own image, next to the servers it runs: the daemon's socket
// mounted, a server container reached by name on the shared network, and a
// full MCP session from this host through berth's published (loopback) port.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { LABELS } from '../../src/backends/labels.ts';
import { docker, dockerUnavailable, removeOwned, testImages, testOwner } from '../helpers/docker.ts';
import { waitFor } from '../helpers/wait.ts';

const unavailable = dockerUnavailable();
const SOCKET = '/var/run/docker.sock';
const KEY = 'berth_image-test-0123456789abcdef';

describe('berth in its own image', { ...(unavailable === undefined ? {} : { skip: unavailable }) }, () => {
  const owner = testOwner();
  after(() => removeOwned(owner));

  test('serves a container server it reaches by name, to an MCP client on this host', async () => {
    const images = testImages();
    // As in examples/docker-compose.yaml: servers on an internal network, berth on it and on a front network for its port.
    const network = `berth-${owner}`;
    await docker.createNetwork({ Name: network, Driver: 'bridge', Internal: true, Labels: { [LABELS.owner]: owner } });
    const front = `berth-${owner}-front`;
    await docker.createNetwork({ Name: front, Driver: 'bridge', Labels: { [LABELS.owner]: owner } });
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-image-'));
    writeFileSync(
      path.join(dir, 'berth.yaml'),
      [
        'version: 1',
        'listen: { host: 0.0.0.0, port: 8080 }',
        // The config mount is read-only; berth's state goes to its writable /tmp.
        'state: { path: /tmp/berth-state.json }',
        `backend: { type: docker, owner: ${owner}, networkMode: shared, network: ${network}, pull: never }`,
        // berth's clients come through the daemon's port forward, not loopback: they need a key.
        `auth:\n  - type: apiKey\n    keys: [{ user: tester, key: "${KEY}" }]`,
        'servers:',
        `  web:\n    type: multi-user\n    runtime: container\n    image: ${images.TEST_HTTP_IMAGE}\n    port: 8080`,
        '',
      ].join('\n'),
    );
    // berth runs as an unprivileged user in its image: the mounted config must be readable to it.
    chmodSync(dir, 0o755);
    chmodSync(path.join(dir, 'berth.yaml'), 0o644);
    const berth = await docker.createContainer({
      // No owner label: berth would take its own container for an orphan of its own.
      Image: images.BERTH_IMAGE,
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: {
        Binds: [`${dir}:/etc/berth:ro`, `${SOCKET}:${SOCKET}`],
        // The socket's group, so berth's unprivileged user may use it (docs/docker.md).
        GroupAdd: [String(statSync(SOCKET).gid)],
        PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
        NetworkMode: front,
      },
    });
    try {
      await docker.getNetwork(network).connect({ Container: berth.id });
      await berth.start();
      const port = (await berth.inspect()).NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort;
      assert.ok(port !== undefined, 'berth published on loopback');
      const url = new URL(`http://127.0.0.1:${port}/mcp/web`);
      const client = await waitFor(async () => {
        const c = new Client({ name: 'image-test', version: '1' });
        try {
          await c.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { 'x-api-key': KEY } } }));
          return c;
        } catch {
          return undefined;
        }
      }, { timeoutMs: 90_000, intervalMs: 500, message: 'berth in its image serves web' });
      const result = (await client.callTool({ name: 'echo', arguments: { message: 'from the host, through berth in a container' } })) as CallToolResult;
      assert.equal((result.content[0] as { text: string }).text, 'from the host, through berth in a container');
      await client.close();
      const servers = await docker.listContainers({ filters: { label: [`${LABELS.owner}=${owner}`, `${LABELS.server}=web`] } });
      assert.equal(servers.length, 1, 'the server runs as a sibling container');
      assert.deepEqual(Object.keys(servers[0]?.NetworkSettings.Networks ?? {}), [network], 'on the shared network, reached by name');
    } catch (err) {
      const logs = await berth.logs({ stdout: true, stderr: true, tail: 40 }).catch(() => Buffer.from(''));
      throw new Error(`${(err as Error).message}\nberth's log:\n${logs.toString('utf8')}`, { cause: err });
    } finally {
      await berth.remove({ force: true }).catch(() => undefined);
    }
  });
});
