// Egress on the Docker backend: by default a server's container sits on an
// internal network and reaches nothing beyond the host; declaring
// backend.pods.egress: [0.0.0.0/0, ::/0] (the Kubernetes backend's field)
// lets it out. The "outside" is a container this test makes on a network of
// its own, published on that network's gateway address, so reaching it needs
// Docker to forward traffic, which an internal network never does. berth on
// the host still reaches the servers (at their address on the network).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DockerSettings } from '../../src/backends/docker/spec.ts';
import { LABELS } from '../../src/backends/labels.ts';
import type { UnitSpec } from '../../src/desired/types.ts';
import { toolsOf } from '../helpers/backend-contract.ts';
import { docker, dockerBackend, dockerUnavailable, httpServerSpec, ownedBackends, removeOwned, testImages, testOwner, testSettings, testUnit } from '../helpers/docker.ts';
import { waitFor } from '../helpers/wait.ts';

const unavailable = dockerUnavailable();
const signal = (): AbortSignal => AbortSignal.timeout(60_000);
const { setUp, removeAll } = ownedBackends();

/** A server whose process only tries to reach `target` and says how it went, in its log. */
function probeSpec(target: string): UnitSpec {
  const script = `fetch(process.env.TARGET, { method: 'POST', signal: AbortSignal.timeout(5000) }).then((r) => console.error('reached ' + r.status), (e) => console.error('blocked ' + (e.cause?.code ?? e.name))); setInterval(() => {}, 1000);`;
  // transport set: the command runs as is, not behind berth bridge, so its stderr is the container's log.
  return { runtime: 'command', command: 'node', args: ['-e', script], transport: 'streamable-http', path: '/mcp', env: { values: { TARGET: target }, sensitive: [], fromUser: [] } };
}

describe('docker egress', { ...(unavailable === undefined ? {} : { skip: unavailable }) }, () => {
  const outsideOwner = testOwner();
  let target = '';
  before(async () => {
    const images = testImages();
    const network = `berth-${outsideOwner}-outside`;
    await docker.createNetwork({ Name: network, Driver: 'bridge', Labels: { [LABELS.owner]: outsideOwner } });
    const gateway = (await docker.getNetwork(network).inspect()).IPAM?.Config?.[0]?.Gateway as string | undefined;
    assert.ok(gateway !== undefined && gateway !== '', 'the outside network has a gateway address on this host');
    const outside = await docker.createContainer({
      Image: images.TEST_HTTP_IMAGE,
      Labels: { [LABELS.owner]: outsideOwner },
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: { NetworkMode: network, PortBindings: { '8080/tcp': [{ HostIp: gateway, HostPort: '' }] } },
    });
    await outside.start();
    const port = await waitFor(async () => (await outside.inspect()).NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort, { message: 'the outside published' });
    target = `http://${gateway}:${port}/mcp`;
  });
  after(async () => {
    await removeAll();
    await removeOwned(outsideOwner);
  });

  async function probe(overrides: Partial<DockerSettings>, name: string): Promise<string> {
    const { backend } = setUp(overrides);
    const [instance] = await backend.ensure({ unit: testUnit(name, probeSpec(target)) }, signal());
    assert.ok(instance !== undefined);
    const line = await waitFor(async () => (await backend.logs(instance.id, 20, signal())).find((l) => /^(reached|blocked) /.test(l)), { timeoutMs: 30_000, intervalMs: 200, message: `${name}: the probe's verdict` });
    return line;
  }

  test('by default the network is internal: a server reaches nothing outside, and berth reaches the server', async () => {
    const { owner, backend } = setUp();
    const [instance] = await backend.ensure({ unit: testUnit('web', httpServerSpec()) }, signal());
    assert.ok(instance !== undefined);
    const network = await docker.getNetwork(`berth-${owner}`).inspect();
    assert.equal(network.Internal, true, 'the servers\' network is internal');
    const info = await docker.getContainer(instance.id).inspect();
    assert.equal(info.HostConfig.PortBindings?.['8080/tcp'], undefined, 'nothing published from an internal network');
    const endpoint = await backend.endpoint(instance.id, signal());
    assert.ok(endpoint.kind === 'http' && endpoint.url === `http://${info.NetworkSettings.Networks[`berth-${owner}`]?.IPAddress}:8080/mcp`, JSON.stringify(endpoint));
    assert.ok((await toolsOf(backend, instance.id, 30_000)).includes('echo'), 'an MCP session from the host');
    assert.match(await probe({}, 'closed'), /^blocked /);
  });

  test('egress declared for everything: the server reaches the outside', async () => {
    assert.match(await probe({ egress: ['0.0.0.0/0', '::/0'] }, 'open'), /^reached /);
  });

  test('an existing network that is not internal is refused by name, not used', async (t) => {
    const owner = testOwner();
    await docker.createNetwork({ Name: `berth-${owner}`, Driver: 'bridge', Labels: { [LABELS.owner]: owner } });
    const { backend } = dockerBackend(testSettings(owner));
    t.after(() => removeOwned(owner));
    await assert.rejects(backend.ensure({ unit: testUnit('web', httpServerSpec()) }, signal()), (err: Error & { code?: string }) => err.code === 'network_mismatch' && /is not internal/.test(err.message));
  });
});
