// The Docker backend beyond the contract: isolation and limits as the daemon
// sees them, drift (kill, OOM), pull policies, stdio servers behind berth
// bridge, and the three ways of reaching containers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InstanceEvent } from '../../src/backends/backend.ts';
import { BackendError } from '../../src/backends/backend.ts';
import { LABELS } from '../../src/backends/labels.ts';
import { toolsOf } from '../helpers/backend-contract.ts';
import { OPEN_EGRESS, docker, dockerUnavailable, httpCommandSpec, httpServerSpec, ownedBackends, runToCompletion, stdioServerSpec, testImages, testUnit } from '../helpers/docker.ts';
import { waitFor } from '../helpers/wait.ts';

const unavailable = dockerUnavailable();
const signal = (): AbortSignal => AbortSignal.timeout(60_000);
const { setUp, owners, removeAll } = ownedBackends();

describe('docker backend', { ...(unavailable === undefined ? {} : { skip: unavailable }) }, () => {
  before(() => testImages());
  after(removeAll);

  test('limits, dropped capabilities, read-only root, loopback-only ports, labels without secrets', async () => {
    // Egress open: only an ordinary bridge network publishes ports (docker-egress.test.ts has the internal default).
    const { backend } = setUp({ egress: OPEN_EGRESS });
    const unit = testUnit('limits', httpServerSpec({ SECRET: 'top-secret-value' }, { resources: { cpu: '500m', memory: '128Mi' } }), { scope: 'per-user' });
    const [instance] = await backend.ensure({ unit, user: { hash: 'a11ce0000000aaaa', env: { TOKEN: 'user-token-value' } } }, signal());
    assert.ok(instance !== undefined);
    const info = await docker.getContainer(instance.id).inspect();
    assert.equal(info.HostConfig.Memory, 128 * 2 ** 20);
    assert.equal(info.HostConfig.MemorySwap, 128 * 2 ** 20);
    assert.equal(info.HostConfig.NanoCpus, 500_000_000);
    assert.equal(info.HostConfig.PidsLimit, 128);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.ok(Object.keys(info.HostConfig.Tmpfs ?? {}).includes('/tmp'));
    assert.equal(info.HostConfig.NetworkMode, `berth-${info.Config.Labels[LABELS.owner]}`);
    const bindings = info.HostConfig.PortBindings?.['8080/tcp'] ?? [];
    assert.deepEqual(bindings, [{ HostIp: '127.0.0.1', HostPort: '' }], 'the daemon picks the host port');
    const published = await waitFor(async () => (await docker.getContainer(instance.id).inspect()).NetworkSettings.Ports['8080/tcp']);
    assert.ok(published.every((b) => b.HostIp === '127.0.0.1' && Number(b.HostPort) > 0), JSON.stringify(published));
    const labels = info.Config.Labels;
    assert.equal(labels[LABELS.user], 'a11ce0000000aaaa');
    assert.equal(labels[LABELS.specHash], unit.specHash);
    assert.equal(labels[LABELS.managedBy], 'berth');
    const visible = JSON.stringify({ labels, name: info.Name, instance, list: await backend.list(signal()) });
    assert.ok(!visible.includes('top-secret-value') && !visible.includes('user-token-value'), 'secrets only in env');
    assert.ok(info.Config.Env.includes('SECRET=top-secret-value') && info.Config.Env.includes('TOKEN=user-token-value'));
    assert.ok((await toolsOf(backend, instance.id, 30_000)).includes('whoami'));
  });

  test('a killed container is reported exited and comes back, same container, after ensure', async () => {
    const { backend } = setUp();
    const unit = testUnit('killed', httpServerSpec());
    const [instance] = await backend.ensure({ unit }, signal());
    assert.ok(instance !== undefined);
    const events: InstanceEvent[] = [];
    const watch = new AbortController();
    void (async () => {
      for await (const e of backend.events(watch.signal)) events.push(e);
    })();
    try {
      await docker.getContainer(instance.id).kill();
      await waitFor(() => events.find((e) => e.kind === 'changed' && e.instance.id === instance.id && e.instance.state === 'exited'), { timeoutMs: 15_000, message: 'an exited event' });
      const [back] = await backend.ensure({ unit }, signal());
      assert.equal(back?.id, instance.id);
      assert.equal(back?.state, 'running');
      assert.equal(back?.restarts, 1);
      assert.ok((await toolsOf(backend, instance.id, 30_000)).includes('echo'));
    } finally {
      watch.abort();
    }
  });

  test('a server over its memory limit is reported oom-killed', async () => {
    const { backend } = setUp();
    const unit = testUnit('oom', httpServerSpec({ ALLOCATE_MB: '200' }, { resources: { memory: '48Mi' } }));
    const [instance] = await backend.ensure({ unit }, signal());
    assert.ok(instance !== undefined);
    const failed = await waitFor(async () => (await backend.list(signal())).find((i) => i.id === instance.id && i.failure !== undefined), { timeoutMs: 30_000, message: 'a failure' });
    assert.equal(failed.failure, 'oom-killed');
    assert.match(failed.lastError ?? '', /out of memory/);
  });

  test('a container started by hand with this owner’s labels is listed, so it can be removed as an orphan', async () => {
    const { backend } = setUp();
    const owner = owners.at(-1) ?? '';
    const stray = await docker.createContainer({ Image: testImages().TEST_HTTP_IMAGE, Labels: { [LABELS.owner]: owner, [LABELS.server]: 'gone', [LABELS.specHash]: 'feedfacefeedface' } });
    const listed = await backend.list(signal());
    assert.deepEqual(listed.filter((i) => i.unit === 'gone').map((i) => i.id), [stray.id]);
    await backend.remove(stray.id, signal());
    assert.deepEqual((await backend.list(signal())).filter((i) => i.unit === 'gone'), []);
  });

  test('pull never: a missing image is image-missing, listed, retryable', async () => {
    const { backend, daemon } = setUp({ pull: 'never' });
    const unit = testUnit('missing', httpServerSpec({}, { image: 'berth-test-missing:never-built' }));
    const before = daemon.writes;
    const err = await backend.ensure({ unit }, signal()).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof BackendError && err.code === 'image_missing' && err.retryable, String(err));
    assert.match(err.message, /berth-test-missing:never-built/);
    assert.equal(daemon.writes - before, 1, 'only the network was created');
    const [listed] = (await backend.list(signal())).filter((i) => i.unit === 'missing');
    assert.equal(listed?.failure, 'image-missing');
    assert.equal(listed?.state, 'failed');
  });

  test('pull always: pulls even a local image, and a failed pull carries the daemon’s message', async () => {
    // A registry on a closed loopback port: the pull fails at once and no traffic leaves the host.
    const image = `127.0.0.1:1/berth-test-http:${testImages().TEST_HTTP_IMAGE.split(':')[1]}`;
    const [repo, tag] = [image.slice(0, image.lastIndexOf(':')), image.slice(image.lastIndexOf(':') + 1)];
    await docker.getImage(testImages().TEST_HTTP_IMAGE).tag({ repo, tag });
    after(() => docker.getImage(image).remove().catch(() => undefined));
    const always = setUp({ pull: 'always' });
    const unit = testUnit('pulled', httpServerSpec({}, { image }));
    const err = await always.backend.ensure({ unit }, signal()).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof BackendError && err.code === 'image_missing' && err.retryable, String(err));
    assert.match(err.message, /127\.0\.0\.1:1/);
    const present = setUp({ pull: 'if-not-present' });
    const [made] = await present.backend.ensure({ unit }, signal());
    assert.equal(made?.specHash, unit.specHash, 'if-not-present uses the local image without pulling');
  });

  test('a stdio server runs in the runtime image behind berth bridge', async () => {
    const { backend } = setUp();
    const unit = testUnit('stdio', stdioServerSpec({ SECRET: 'x' }));
    const [instance] = await backend.ensure({ unit }, signal());
    assert.ok(instance !== undefined);
    const info = await docker.getContainer(instance.id).inspect();
    assert.deepEqual(info.Config.Cmd?.slice(0, 6), ['bridge', '--host', '0.0.0.0', '--port', '8080', '--']);
    assert.ok((await toolsOf(backend, instance.id, 30_000)).includes('whoami'));
  });

  test('an HTTP command server runs directly in the runtime image, told its port in PORT, reached at its path', async () => {
    for (const networkMode of ['published', 'host'] as const) {
      const { backend } = setUp({ networkMode });
      const unit = testUnit(`http-command-${networkMode}`, httpCommandSpec('/custom/mcp'));
      const [instance] = await backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      const info = await docker.getContainer(instance.id).inspect();
      assert.deepEqual(info.Config.Entrypoint, ['node', '/app/fixtures/mcp-server.mjs'], 'not behind berth bridge');
      const port = info.Config.Env.find((e) => e.startsWith('PORT='));
      assert.ok(port !== undefined, 'PORT is set');
      const endpoint = await backend.endpoint(instance.id, signal());
      assert.ok(endpoint.kind === 'http' && endpoint.url.endsWith('/custom/mcp'), JSON.stringify(endpoint));
      if (networkMode === 'host') assert.equal(new URL(endpoint.url).port, port.slice('PORT='.length));
      assert.ok((await toolsOf(backend, instance.id, 30_000)).includes('echo'));
    }
  });

  test('network host: servers listen on the loopback port berth assigns', async () => {
    const { backend } = setUp({ networkMode: 'host' });
    for (const spec of [httpServerSpec(), stdioServerSpec()]) {
      const unit = testUnit(`host-${spec.runtime}`, spec);
      const [instance] = await backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      const endpoint = await backend.endpoint(instance.id, signal());
      assert.ok(endpoint.kind === 'http' && /^http:\/\/127\.0\.0\.1:\d+\/mcp$/.test(endpoint.url), JSON.stringify(endpoint));
      assert.equal((await docker.getContainer(instance.id).inspect()).HostConfig.NetworkMode, 'host');
      assert.ok((await toolsOf(backend, instance.id, 30_000)).includes('echo'));
    }
  });

  test('shared network: berth in its own image reaches servers by container name', async () => {
    const { backend } = setUp({ networkMode: 'shared' });
    const urls: string[] = [];
    for (const spec of [httpServerSpec(), stdioServerSpec()]) {
      const [instance] = await backend.ensure({ unit: testUnit(`shared-${spec.runtime}`, spec) }, signal());
      assert.ok(instance !== undefined);
      const endpoint = await backend.endpoint(instance.id, signal());
      assert.ok(endpoint.kind === 'http' && endpoint.url.startsWith(`http://${instance.detail}:8080/`), JSON.stringify(endpoint));
      urls.push(endpoint.url);
    }
    // An MCP session from a container of berth's image on the same network, as berth in a container would open it.
    const script = `
      import { Client } from '@modelcontextprotocol/sdk/client/index.js';
      import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
      for (const url of ${JSON.stringify(urls)}) {
        for (let attempt = 0; ; attempt++) {
          try {
            const client = new Client({ name: 'probe', version: '1' });
            await client.connect(new StreamableHTTPClientTransport(new URL(url)));
            const { content } = await client.callTool({ name: 'echo', arguments: { message: 'hello from ' + url } });
            console.log(content[0].text);
            await client.close();
            break;
          } catch (err) {
            if (attempt > 60) throw err;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      }`;
    const network = `berth-${owners.at(-1) ?? ''}`;
    const probe = await runToCompletion({ Image: testImages().BERTH_IMAGE, Entrypoint: ['node', '--input-type=module', '-e', script], WorkingDir: '/app', HostConfig: { NetworkMode: network } });
    assert.equal(probe.code, 0, probe.output);
    for (const url of urls) assert.ok(probe.output.includes(`hello from ${url}`), probe.output);
  });
});
