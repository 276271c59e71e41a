// berth serving MCP clients from pods of the real cluster (scripts/cluster.sh),
// in a namespace of its own: a single-user server's Deployment made on a
// user's first call and removed once idle, and a session pinned to its pod
// while a second replica comes up and the first goes away. Skipped without
// BERTH_TEST_KUBECONFIG; failing instead in CI. The same routing on the fake:
// kubernetes-routing.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { InstanceStatus, StatusReport } from '../../src/cli/status-model.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, startTestBerth } from '../helpers/berth.ts';
import { CLUSTER_ENV, EVERYTHING_IMAGE, realClusterOrSkip, testNamespace } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';

const real = realClusterOrSkip();
const SKIP = 'skip' in real ? real.skip : false;
const POD_MS = 90_000;
const CASE = { timeout: 240_000 };
const KEY = 'berth_alice-0123456789abcdef-kube';
/** /status is for the admin group. */
const ADMIN_KEY = 'berth_root-0123456789abcdef-kube';
let namespace = '';
let removeNamespace = async (): Promise<void> => undefined;
let config: k8s.KubeConfig;
let b: TestBerth | undefined;
const clients: Client[] = [];

const servers = (replicas: number): string =>
  `  personal:\n    type: single-user\n    runtime: container\n    image: ${EVERYTHING_IMAGE}\n    port: 3001\n    idleTimeout: 2s\n    startupTimeout: 90s\n` +
  `  pinned:\n    type: multi-user\n    runtime: container\n    image: ${EVERYTHING_IMAGE}\n    port: 3001\n    replicas: ${replicas}\n`;

async function connect(server: string): Promise<Client> {
  const client = await connectClient(b?.url ?? '', server, {}, { 'x-api-key': KEY });
  clients.push(client);
  return client;
}

async function echo(client: Client): Promise<string | undefined> {
  const result = (await client.callTool({ name: 'echo', arguments: { message: 'hi' } })) as { content: { text: string }[] };
  return result.content[0]?.text;
}

async function instancesOf(server: string): Promise<readonly InstanceStatus[]> {
  const report = (await (await fetch(`${b?.url ?? ''}/status`, { headers: { 'x-api-key': ADMIN_KEY } })).json()) as StatusReport;
  return report.servers.find((s) => s.name === server)?.instances ?? [];
}

/** The names of berth's Deployments of `server` in the namespace. */
async function deploymentsOf(server: string): Promise<string[]> {
  const list = await config.makeApiClient(k8s.AppsV1Api).listNamespacedDeployment({ namespace, labelSelector: `berth.dev/server=${server}` });
  return list.items.map((d) => d.metadata?.name ?? '');
}

before(async () => {
  if (!('cluster' in real)) return;
  config = real.cluster.config;
  ({ name: namespace, remove: removeNamespace } = await testNamespace(config, 'berth-serve'));
  const head = `state: { key: "0123456789abcdef0123456789abcdef-kube" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: alice, key: "${KEY}" }\n      - { user: root, groups: [admin], key: "${ADMIN_KEY}" }\nbackend: { type: kubernetes, namespace: ${namespace}, kubeconfig: ${JSON.stringify(process.env[CLUSTER_ENV])} }\n`;
  b = await startTestBerth(servers(1), head);
});

after(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await b?.stop();
  await removeNamespace();
});

describe('berth serving from real pods', { skip: SKIP }, () => {
  test('a single-user server\'s Deployment is made on the user\'s first call, removed once idle, and made again on the next', CASE, async () => {
    assert.deepEqual(await deploymentsOf('personal'), [], 'nothing before the first call');
    const first = await connect('personal');
    assert.equal(await echo(first), 'Echo: hi');
    const [made] = await deploymentsOf('personal');
    assert.match(made ?? '', /^berth-personal-[0-9a-f]{10}$/, 'the user\'s own Deployment');
    await first.close();
    // idleTimeout 2 s, swept every 5 s: the Deployment and every object of the placement go.
    const services = async (): Promise<number> => (await config.makeApiClient(k8s.CoreV1Api).listNamespacedService({ namespace, labelSelector: 'berth.dev/server=personal' })).items.length;
    await waitFor(async () => (await deploymentsOf('personal')).length === 0 && (await services()) === 0, { timeoutMs: 60_000, intervalMs: 500, message: 'the idle user\'s Deployment and Service removed' });
    const again = await connect('personal');
    assert.equal(await echo(again), 'Echo: hi');
    assert.deepEqual(await deploymentsOf('personal'), [made], 'made again on the next call, under the same name');
    await again.close();
  });

  test('a session stays on its pod while a second replica comes up, and ends (404, initialize again) only when its pod goes', CASE, async () => {
    const one = await waitFor(async () => {
      const ready = (await instancesOf('pinned')).filter((i) => i.state === 'ready');
      return ready.length === 1 ? ready[0] : undefined;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'the first pod ready in berth' });
    const pinned = await connect('pinned');
    assert.equal(await echo(pinned), 'Echo: hi');
    b?.writeConfig(servers(2));
    const two = await waitFor(async () => {
      const ready = (await instancesOf('pinned')).filter((i) => i.state === 'ready');
      return ready.length === 2 ? ready.find((i) => i.id !== one.id) : undefined;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'a second pod ready in berth' });
    assert.equal(await echo(pinned), 'Echo: hi');
    const sessions = async (): Promise<Record<string, number>> => Object.fromEntries((await instancesOf('pinned')).map((i) => [i.id, i.sessions]));
    assert.deepEqual(await sessions(), { [one.id]: 1, [two.id]: 0 }, 'the session stayed on its pod');
    // A new session goes to the pod with the fewest.
    const other = await connect('pinned');
    assert.equal(await echo(other), 'Echo: hi');
    assert.deepEqual(await sessions(), { [one.id]: 1, [two.id]: 1 });
    await config.makeApiClient(k8s.CoreV1Api).deleteNamespacedPod({ name: one.id, namespace });
    // The pod's process may stop before its EndpointSlice says so: a call in that gap fails
    // (-32003, the server stopped); once berth sees the pod leave, the session ends.
    const failures: string[] = [];
    await waitFor(() => echo(pinned).then(() => false, (e: unknown) => {
      failures.push((e as Error).message);
      return /404|Session not found/.test((e as Error).message);
    }), { timeoutMs: 30_000, intervalMs: 250, message: 'the session of the deleted pod ended (404)' });
    for (const failure of failures) assert.match(failure, /404|Session not found|server pinned stopped/);
    assert.equal(await echo(other), 'Echo: hi', 'the other pod\'s session is untouched');
    const renewed = await connect('pinned');
    assert.equal(await echo(renewed), 'Echo: hi', 'initializing again lands on a ready pod');
    assert.ok(!(await instancesOf('pinned')).some((i) => i.id === one.id && i.sessions > 0), 'nothing routed to the deleted pod');
  });

  test('a user\'s first call that a pods quota refuses gets insufficient capacity at once, not at its startup deadline', CASE, async () => {
    // Its own namespace and berth: the quota would starve the other cases.
    const quoted = await testNamespace(config, 'berth-serve-quota');
    after(() => quoted.remove());
    const core = config.makeApiClient(k8s.CoreV1Api);
    await core.createNamespacedResourceQuota({ namespace: quoted.name, body: { metadata: { name: 'berth-quota' }, spec: { hard: { pods: '0' } } } });
    await waitFor(async () => (await core.readNamespacedResourceQuota({ name: 'berth-quota', namespace: quoted.name })).status?.hard?.pods === '0', { timeoutMs: 30_000, intervalMs: 250, message: 'the quota synced' });
    const head = `state: { key: "0123456789abcdef0123456789abcdef-kube" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: alice, key: "${KEY}" }\n      - { user: root, groups: [admin], key: "${ADMIN_KEY}" }\nbackend: { type: kubernetes, namespace: ${quoted.name}, kubeconfig: ${JSON.stringify(process.env[CLUSTER_ENV])} }\n`;
    const starved = await startTestBerth(`  refused:\n    type: single-user\n    runtime: container\n    image: ${EVERYTHING_IMAGE}\n    port: 3001\n    startupTimeout: 5m\n`, head);
    after(() => starved.stop());
    // Well before the 5-minute startup timeout, the request that started the placement is told why.
    const err = await connectClient(starved.url, 'refused', {}, { 'x-api-key': KEY }).then(() => undefined, (e: unknown) => e as Error);
    assert.match(err?.message ?? 'connected', /insufficient-capacity/);
  });
});
