// The Kubernetes backend against a real control plane (scripts/cluster.sh:
// kube-apiserver on etcd, controller manager, scheduler, and a kubelet on
// containerd whose pods serve berth.test/everything:local on their own
// addresses). The same cases as kubernetes-backend.test.ts runs on the fake,
// measured here by what the API server holds: resourceVersions, ReplicaSets,
// pod statuses written by the kubelet. Skipped without BERTH_TEST_KUBECONFIG;
// failing instead in CI.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ObservedInstance, Placement } from '../../src/backends/backend.ts';
import { KubernetesBackend } from '../../src/backends/kubernetes/index.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { hashUser } from '../../src/desired/hash.ts';
import type { Unit } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { EVERYTHING_IMAGE, realClusterOrSkip, testNamespace } from '../helpers/cluster.ts';
import { kubernetesUnits } from '../helpers/kube-units.ts';
import { waitFor } from '../helpers/wait.ts';

const real = realClusterOrSkip();
const SKIP = 'skip' in real ? real.skip : false;
const POD_MS = 90_000;
/** Real pods start, roll and terminate (a 30 s grace period each): longer than the tier's default. */
const CASE = { timeout: 240_000 };
let namespace = '';
let removeNamespace = async (): Promise<void> => undefined;
let config: k8s.KubeConfig;
const signal = new AbortController().signal;
const backends: KubernetesBackend[] = [];

function newBackend(owner = 'berth'): KubernetesBackend {
  const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes', namespace }, owner), config, logger: silentLogger() });
  backends.push(backend);
  return backend;
}

function units(servers: string): Unit[] {
  return kubernetesUnits(namespace, servers);
}

const container = (name: string, extra = '', image = EVERYTHING_IMAGE): string => `  ${name}:\n    type: multi-user\n    runtime: container\n    image: ${image}\n    port: 3001\n${extra}`;
const shared = (name: string, extra = '', image?: string): Placement => ({ unit: units(container(name, extra, image))[0] as Unit });
const perUser = (name: string): Unit => units(`  ${name}:\n    type: single-user\n    runtime: container\n    image: ${EVERYTHING_IMAGE}\n    port: 3001\n    env:\n      TOKEN: { fromUser: true, sensitive: true }\n`)[0] as Unit;
const running = (instances: readonly ObservedInstance[], n: number): boolean => instances.length === n && instances.every((i) => i.state === 'running');
const ofUnit = async (backend: KubernetesBackend, unit: string): Promise<ObservedInstance[]> => (await backend.list(signal)).filter((i) => i.unit === unit);
const objects = (): k8s.KubernetesObjectApi => k8s.KubernetesObjectApi.makeApiClient(config);
const apps = (): k8s.AppsV1Api => config.makeApiClient(k8s.AppsV1Api);

/** The resourceVersion of a live object: unchanged means nobody wrote it. */
async function versionOf(apiVersion: string, kind: string, name: string): Promise<string | undefined> {
  return (await objects().read({ apiVersion, kind, metadata: { name, namespace } })).metadata?.resourceVersion;
}

/** ReplicaSets the Deployment controller made for a Deployment: one per rollout, plus the first. */
async function replicaSetsOf(deployment: string): Promise<number> {
  const sets = await apps().listNamespacedReplicaSet({ namespace });
  return sets.items.filter((s) => s.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === deployment)).length;
}

async function callEcho(url: string): Promise<string | undefined> {
  const client = new Client({ name: 'kube-real-test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  try {
    const echoed = (await client.callTool({ name: 'echo', arguments: { message: 'from a pod' } })) as { content: { text: string }[] };
    return echoed.content[0]?.text;
  } finally {
    await client.close();
  }
}

before(async () => {
  if (!('cluster' in real)) return;
  config = real.cluster.config;
  ({ name: namespace, remove: removeNamespace } = await testNamespace(config));
});

after(async () => {
  for (const backend of backends) await backend.close();
  await removeNamespace();
});

describe('convergence on a real control plane', { skip: SKIP }, () => {
  test('create: objects applied, pods running on the node, the MCP server reachable at its pod address', CASE, async () => {
    const backend = newBackend();
    const created = await backend.ensure(shared('create', '    replicas: 2\n'), signal);
    assert.equal(created.length, 2, 'two replicas reported at once, before pods exist');
    const instances = await waitFor(async () => {
      const now = await ofUnit(backend, 'create');
      return running(now, 2) ? now : undefined;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'two running pods' });
    const endpoint = await backend.endpoint(instances[0]?.id ?? '', signal);
    assert.equal(endpoint.kind, 'http');
    const url = endpoint.kind === 'http' ? endpoint.url : '';
    assert.match(url, /^http:\/\/10\.244\.0\.\d+:3001\/mcp$/, 'the pod\'s own address from the CNI bridge');
    assert.equal(await waitFor(() => callEcho(url), { timeoutMs: 20_000, intervalMs: 250, message: 'an MCP answer from the pod' }), 'Echo: from a pod');
    const policy = await objects().read<k8s.V1NetworkPolicy>({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'berth-create', namespace } });
    assert.deepEqual(policy.spec?.ingress?.[0]?._from?.[0]?.podSelector?.matchLabels, { 'app.kubernetes.io/name': 'berth' });
    // Two replicas: a PodDisruptionBudget, which the API server accepted as rendered.
    assert.ok(await versionOf('policy/v1', 'PodDisruptionBudget', 'berth-create'));
  });

  test('adopt: a restarted berth lists the same instances and writes nothing', CASE, async () => {
    const first = newBackend();
    // An empty value: the API server stores the variable's name alone, and berth must compare equal to that.
    const placement = shared('adopt', '    env: { EMPTY: "" }\n');
    await first.ensure(placement, signal);
    const before = await waitFor(async () => {
      const now = await ofUnit(first, 'adopt');
      return running(now, 1) ? now : undefined;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'a running pod' });
    const restarted = newBackend();
    assert.deepEqual((await ofUnit(restarted, 'adopt')).map((i) => i.id), before.map((i) => i.id));
    const version = await versionOf('apps/v1', 'Deployment', 'berth-adopt');
    await restarted.ensure(placement, signal);
    assert.equal(restarted.apiWrites, 0);
    assert.equal(await versionOf('apps/v1', 'Deployment', 'berth-adopt'), version);
  });

  test('a new user of a shared server makes no write; a new user of a per-user server writes only their objects', CASE, async () => {
    const backend = newBackend();
    await backend.ensure(shared('sharedone'), signal);
    const before = backend.apiWrites;
    await backend.ensure(shared('sharedone'), signal);
    assert.equal(backend.apiWrites, before);
    const unit = perUser('personal');
    await backend.ensure({ unit, user: { hash: hashUser('alice', 'test-label-secret'), env: { TOKEN: 'a' } } }, signal);
    const alice = `berth-personal-${hashUser('alice', 'test-label-secret').slice(0, 10)}`;
    const versions = await Promise.all([versionOf('apps/v1', 'Deployment', alice), versionOf('v1', 'Secret', alice), versionOf('v1', 'Service', alice)]);
    await backend.ensure({ unit, user: { hash: hashUser('bob', 'test-label-secret'), env: { TOKEN: 'b' } } }, signal);
    assert.deepEqual(await Promise.all([versionOf('apps/v1', 'Deployment', alice), versionOf('v1', 'Secret', alice), versionOf('v1', 'Service', alice)]), versions, 'alice\'s objects untouched');
    const users = new Set((await ofUnit(backend, 'personal')).map((i) => i.userHash));
    assert.deepEqual([...users].sort(), [hashUser('alice', 'test-label-secret'), hashUser('bob', 'test-label-secret')].sort());
  });

  test('replace: a changed spec rewrites only the Deployment, one rollout, the old pod serving until the new one is ready', CASE, async () => {
    const backend = newBackend();
    const v1 = shared('replaced', '    env: { MODE: one }\n');
    await backend.ensure(v1, signal);
    const [old] = await waitFor(async () => {
      const now = await ofUnit(backend, 'replaced');
      return running(now, 1) ? now : undefined;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'the first pod running' });
    const writes = backend.apiWrites;
    const v2 = shared('replaced', '    env: { MODE: two }\n');
    await backend.ensure(v2, signal);
    assert.equal(backend.apiWrites - writes, 1, 'only the Deployment');
    // maxUnavailable 0: until a pod at the new spec is ready, the old one is listed and not terminating.
    const seen = await waitFor(async () => {
      const now = await ofUnit(backend, 'replaced');
      if (!now.some((i) => i.id === old?.id)) throw new Error('the old pod went before a new one was ready');
      return now.find((i) => i.specHash === v2.unit.specHash && i.state === 'running');
    }, { timeoutMs: POD_MS, intervalMs: 100, message: 'a pod at the new spec running beside the old' });
    assert.notEqual(seen.id, old?.id);
    await waitFor(async () => {
      const now = await ofUnit(backend, 'replaced');
      return now.length === 1 && now[0]?.specHash === v2.unit.specHash;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'the old pod gone' });
    assert.equal(await replicaSetsOf('berth-replaced'), 2, 'one rollout');
  });

  test('a changed secret is exactly one rollout: the Secret and the Deployment written once each', CASE, async () => {
    const backend = newBackend();
    const unit = perUser('vault');
    const user = hashUser('carol', 'test-label-secret');
    const name = `berth-vault-${user.slice(0, 10)}`;
    await backend.ensure({ unit, user: { hash: user, env: { TOKEN: 'first' } } }, signal);
    await waitFor(async () => running(await ofUnit(backend, 'vault'), 1), { timeoutMs: POD_MS, intervalMs: 250 });
    const writes = backend.apiWrites;
    const service = await versionOf('v1', 'Service', name);
    await backend.ensure({ unit, user: { hash: user, env: { TOKEN: 'second' } } }, signal);
    assert.equal(backend.apiWrites - writes, 2, 'the Secret and the Deployment');
    assert.equal(await versionOf('v1', 'Service', name), service);
    await waitFor(async () => {
      const now = await ofUnit(backend, 'vault');
      return now.length === 1 && now[0]?.state === 'running' && (await replicaSetsOf(name)) === 2;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'the rollout done' });
    await backend.ensure({ unit, user: { hash: user, env: { TOKEN: 'second' } } }, signal);
    assert.equal(await replicaSetsOf(name), 2, 'exactly one rollout');
  });

  test('drift: a scaled Deployment, a deleted Service and a deleted Secret are put back, nothing else written', CASE, async () => {
    const backend = newBackend();
    const unit = perUser('drifted');
    const placement: Placement = { unit, user: { hash: hashUser('dave', 'test-label-secret'), env: { TOKEN: 'd' } } };
    const name = `berth-drifted-${hashUser('dave', 'test-label-secret').slice(0, 10)}`;
    await backend.ensure(placement, signal);
    await apps().patchNamespacedDeploymentScale({ name, namespace, body: { spec: { replicas: 3 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await objects().delete({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace } });
    await objects().delete({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace } });
    const before = backend.apiWrites;
    await backend.ensure(placement, signal);
    assert.equal(backend.apiWrites - before, 3);
    const live = await apps().readNamespacedDeployment({ name, namespace });
    assert.equal(live.spec?.replicas, 1);
    await backend.ensure(placement, signal);
    assert.equal(backend.apiWrites - before, 3, 'repaired once, then quiet');
  });

  test('remove and orphan removal: every object of a placement goes', CASE, async () => {
    const backend = newBackend();
    await backend.ensure(shared('orphan', '    replicas: 2\n'), signal);
    const restarted = newBackend();
    await waitFor(async () => {
      for (const instance of await ofUnit(restarted, 'orphan')) await restarted.remove(instance.id, signal);
      return (await ofUnit(restarted, 'orphan')).length === 0;
    }, { timeoutMs: POD_MS, intervalMs: 250, message: 'every instance removed' });
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['v1', 'Service'], ['networking.k8s.io/v1', 'NetworkPolicy'], ['policy/v1', 'PodDisruptionBudget']] as const) {
      await assert.rejects(objects().read({ apiVersion, kind, metadata: { name: 'berth-orphan', namespace } }), (err: { code?: number }) => err.code === 404, kind);
    }
  });
});

describe('failure classes on a real kubelet', { skip: SKIP }, () => {
  // No image is pulled from anywhere: an upper-case name is refused before any pull, and the one
  // registry named is a closed port on loopback.
  const cases = [
    { name: 'crash', extra: '    env: { PORT: "99999" }\n', image: EVERYTHING_IMAGE, state: 'crash-looping', failure: 'crash-loop', message: /CrashLoopBackOff|back-off|exit/i },
    { name: 'badname', extra: '', image: 'berth.test/Bad-Name:1', state: 'failed', failure: 'image-missing', message: /InvalidImageName/ },
    { name: 'nopull', extra: '', image: '127.0.0.1:1/berth-test/absent:1', state: 'creating', failure: 'pulling', message: /ErrImagePull|ImagePullBackOff/ },
    { name: 'toobig', extra: '    resources: { cpu: "64", memory: 64Mi }\n', image: EVERYTHING_IMAGE, state: 'creating', failure: 'unschedulable', message: /Insufficient cpu/ },
  ] as const;
  for (const c of cases) {
    test(`${c.name}: ${c.state} (${c.failure}) with the cluster's message`, CASE, async () => {
      const backend = newBackend();
      await backend.ensure(shared(`fail-${c.name}`, c.extra, c.image), signal);
      const instance = await waitFor(async () => (await ofUnit(backend, `fail-${c.name}`)).find((i) => i.failure === c.failure), { timeoutMs: POD_MS, intervalMs: 250, message: `failure ${c.failure}` });
      assert.equal(instance.state, c.state);
      assert.match(instance.lastError ?? '', c.message);
      for (const i of await ofUnit(backend, `fail-${c.name}`)) await backend.remove(i.id, signal);
    });
  }
});
