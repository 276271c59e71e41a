// The Kubernetes backend converging against the loopback fake API server,
// whose scripted kubelet reaches every failure class and whose faults (dropped
// watches, 410 Gone, refused verbs) are injected at will. The same cases on a
// real control plane: test/integration/kubernetes-real.test.ts.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { InstanceEvent, ObservedInstance, Placement, PlacementReplicas } from '../../src/backends/backend.ts';
import { BackendError } from '../../src/backends/backend.ts';
import { KubernetesBackend } from '../../src/backends/kubernetes/index.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { hashUser } from '../../src/desired/hash.ts';
import type { Unit } from '../../src/desired/types.ts';
import type { Logger } from '../../src/observe/log.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { everythingServer, freePort } from '../helpers/berth.ts';
import { FakeKube } from '../helpers/fake-kube/server.ts';
import { RESOURCES } from '../helpers/fake-kube/store.ts';
import { kubernetesUnits } from '../helpers/kube-units.ts';
import { waitFor } from '../helpers/wait.ts';

const NAMESPACE = 'default';

const fake = new FakeKube();
let config: k8s.KubeConfig;
let port = 0;
let upstream: ChildProcess | undefined;
const signal = new AbortController().signal;
const backends: KubernetesBackend[] = [];

/** A fresh backend, as after a berth restart: nothing in memory, everything from the cluster. */
function newBackend(owner = 'berth', logger: Logger = silentLogger()): KubernetesBackend {
  const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes', namespace: NAMESPACE }, owner), config, logger });
  backends.push(backend);
  return backend;
}

function units(servers: string): Unit[] {
  return kubernetesUnits(NAMESPACE, servers);
}

const container = (name: string, extra = ''): string => `  ${name}:\n    type: multi-user\n    runtime: container\n    image: example.com/${name}:1\n    port: ${port}\n${extra}`;
const shared = (name: string, extra = ''): Placement => ({ unit: units(container(name, extra))[0] as Unit });
const running = (instances: readonly ObservedInstance[], n: number): boolean => instances.filter((i) => i.state === 'running').length === n;
const ofUnit = async (backend: KubernetesBackend, unit: string): Promise<ObservedInstance[]> => (await backend.list(signal)).filter((i) => i.unit === unit);

before(async () => {
  // The fake first: a port picked before it binds could be the one it takes.
  await fake.start();
  port = await freePort();
  config = new k8s.KubeConfig();
  config.loadFromOptions(fake.kubeconfig());
  upstream = spawn(process.execPath, [everythingServer, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  // Any answer but 404 is server-everything's own (a GET without a session is refused, not unknown).
  await waitFor(() => fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' }).then((r) => r.status !== 404, () => false), { timeoutMs: 20_000, message: 'server-everything listening' });
});

after(async () => {
  for (const backend of backends) await backend.close();
  await fake.close();
  upstream?.kill();
});

describe('convergence', () => {
  test('create: objects applied, pods running, the MCP server reachable at its endpoint', async () => {
    const backend = newBackend();
    const created = await backend.ensure(shared('create', '    replicas: 2\n'), signal);
    assert.equal(created.length, 2, 'two replicas reported at once, before pods exist');
    const instances = await waitFor(async () => {
      const now = await ofUnit(backend, 'create');
      return running(now, 2) ? now : undefined;
    }, { message: 'two running pods' });
    assert.deepEqual(instances.map((i) => i.replica).sort(), [0, 1]);
    const endpoint = await backend.endpoint(instances[0]?.id ?? '', signal);
    assert.equal(endpoint.kind === 'http' ? endpoint.url : '', `http://127.0.0.1:${port}/mcp`);
    const client = new Client({ name: 'kube-test', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(endpoint.kind === 'http' ? endpoint.url : '')));
    const echoed = (await client.callTool({ name: 'echo', arguments: { message: 'from a pod' } })) as { content: { text: string }[] };
    assert.equal(echoed.content[0]?.text, 'Echo: from a pod');
    await client.close();
    // Every rendered field reached the server, including those the client's models rename (`from`).
    const policy = await k8s.KubernetesObjectApi.makeApiClient(config).read<k8s.V1NetworkPolicy>({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'berth-create', namespace: NAMESPACE } });
    assert.deepEqual(policy.spec?.ingress?.[0]?._from?.[0]?.podSelector?.matchLabels, { 'app.kubernetes.io/name': 'berth' });
    const kinds = fake.writesOf().filter((w) => w.name === 'berth-create').map((w) => `${w.method} ${w.kind}`);
    assert.deepEqual(kinds, ['APPLY NetworkPolicy', 'APPLY Service', 'APPLY Deployment', 'APPLY PodDisruptionBudget']);
  });

  test('adopt: a restarted berth lists the same instances and writes nothing', async () => {
    const first = newBackend();
    const placement = shared('adopt');
    await first.ensure(placement, signal);
    const before = await waitFor(async () => ((await ofUnit(first, 'adopt')).every((i) => !i.id.includes('#')) ? ofUnit(first, 'adopt') : undefined));
    const restarted = newBackend();
    assert.deepEqual((await ofUnit(restarted, 'adopt')).map((i) => i.id), before.map((i) => i.id));
    const writes = fake.writes.length;
    await restarted.ensure(placement, signal);
    assert.equal(restarted.apiWrites, 0);
    assert.equal(fake.writes.length, writes);
  });

  test('a new user of a shared server makes no write; a new user of a per-user server writes only their objects', async () => {
    const backend = newBackend();
    await backend.ensure(shared('sharedone'), signal);
    const before = backend.apiWrites;
    // Per-user identity never reaches a shared placement: ensuring it again for "another user" is the same call.
    await backend.ensure(shared('sharedone'), signal);
    assert.equal(backend.apiWrites, before);
    const unit = units('  personal:\n    type: single-user\n    runtime: npx\n    package: some-mcp\n    env:\n      TOKEN: { fromUser: true, sensitive: true }\n')[0] as Unit;
    await backend.ensure({ unit, user: { hash: hashUser('alice', 'test-label-secret'), env: { TOKEN: 'a' } } }, signal);
    const start = fake.writes.length;
    await backend.ensure({ unit, user: { hash: hashUser('bob', 'test-label-secret'), env: { TOKEN: 'b' } } }, signal);
    const bob = `berth-personal-${hashUser('bob', 'test-label-secret').slice(0, 10)}`;
    assert.ok(fake.writes.slice(start).every((w) => w.name === bob), 'only bob\'s objects written');
    const users = new Set((await ofUnit(backend, 'personal')).map((i) => i.userHash));
    assert.deepEqual([...users].sort(), [hashUser('alice', 'test-label-secret'), hashUser('bob', 'test-label-secret')].sort());
  });

  test('replace: a changed spec rewrites only the Deployment, one rollout, pods at the new spec', async () => {
    const backend = newBackend();
    const v1 = shared('replaced', '    env: { MODE: one }\n');
    await backend.ensure(v1, signal);
    await waitFor(async () => running(await ofUnit(backend, 'replaced'), 1));
    const start = fake.writes.length;
    const v2 = shared('replaced', '    env: { MODE: two }\n');
    await backend.ensure(v2, signal);
    assert.deepEqual(fake.writes.slice(start).map((w) => `${w.method} ${w.kind}`), ['APPLY Deployment']);
    await waitFor(async () => {
      const now = await ofUnit(backend, 'replaced');
      return now.length === 1 && now[0]?.specHash === v2.unit.specHash && now[0].state === 'running';
    }, { message: 'the pod at the new spec replaced the old one' });
    assert.equal(fake.kubelet.rolloutsOf('berth-replaced'), 1);
  });

  test('a changed secret is exactly one rollout: the Secret and the Deployment written once each', async () => {
    const backend = newBackend();
    const unit = units('  vault:\n    type: single-user\n    runtime: npx\n    package: vault-mcp\n    env:\n      TOKEN: { fromUser: true, sensitive: true }\n')[0] as Unit;
    const user = hashUser('carol', 'test-label-secret');
    await backend.ensure({ unit, user: { hash: user, env: { TOKEN: 'first' } } }, signal);
    await waitFor(async () => running(await ofUnit(backend, 'vault'), 1));
    const start = fake.writes.length;
    await backend.ensure({ unit, user: { hash: user, env: { TOKEN: 'second' } } }, signal);
    assert.deepEqual(fake.writes.slice(start).map((w) => `${w.method} ${w.kind}`), ['APPLY Secret', 'APPLY Deployment']);
    const name = `berth-vault-${user.slice(0, 10)}`;
    await waitFor(() => fake.kubelet.rolloutsOf(name) === 1, { message: 'one rollout' });
    await waitFor(async () => running(await ofUnit(backend, 'vault'), 1));
    assert.equal(fake.kubelet.rolloutsOf(name), 1);
  });

  test('drift: a scaled Deployment and a deleted Service are put back, nothing else written', async () => {
    const backend = newBackend();
    const placement = shared('drifted');
    await backend.ensure(placement, signal);
    const objects = k8s.KubernetesObjectApi.makeApiClient(config);
    await objects.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'berth-drifted', namespace: NAMESPACE }, spec: { replicas: 3 } } as k8s.KubernetesObject, undefined, undefined, 'kubectl-scale', undefined, k8s.PatchStrategy.MergePatch);
    await objects.delete({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'berth-drifted', namespace: NAMESPACE } });
    const before = backend.apiWrites;
    await backend.ensure(placement, signal);
    assert.equal(backend.apiWrites - before, 2);
    const live = await objects.read<k8s.V1Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'berth-drifted', namespace: NAMESPACE } });
    assert.equal(live.spec?.replicas, 1);
    await backend.ensure(placement, signal);
    assert.equal(backend.apiWrites - before, 2, 'repaired once, then quiet');
  });

  test('remove and orphan removal: every object of a placement goes, pod-less Deployments too', async () => {
    const backend = newBackend();
    await backend.ensure(shared('orphan', '    replicas: 2\n'), signal);
    fake.kubelet.behave(({ deployment }) => (deployment === 'berth-orphan' ? 'invalid-image' : 'run'));
    // A new berth whose config no longer has the server removes whatever it lists for it.
    const restarted = newBackend();
    for (let round = 0; round < 5; round++) {
      const left = await ofUnit(restarted, 'orphan');
      if (left.length === 0) break;
      for (const instance of left) await restarted.remove(instance.id, signal);
    }
    const objects = k8s.KubernetesObjectApi.makeApiClient(config);
    for (const kind of ['Deployment', 'Service', 'NetworkPolicy', 'PodDisruptionBudget']) {
      const apiVersion = { Deployment: 'apps/v1', Service: 'v1', NetworkPolicy: 'networking.k8s.io/v1', PodDisruptionBudget: 'policy/v1' }[kind] ?? '';
      await assert.rejects(objects.read({ apiVersion, kind, metadata: { name: 'berth-orphan', namespace: NAMESPACE } }), (err: { code?: number }) => err.code === 404, kind);
    }
    await waitFor(async () => (await ofUnit(restarted, 'orphan')).length === 0, { message: 'pods gone' });
    await restarted.remove('berth-orphan-gone', signal);
    fake.kubelet.behave(() => 'run');
  });
});

describe('failure classes', () => {
  const cases = [
    { behaviour: 'crash-loop', state: 'crash-looping', failure: 'crash-loop', message: /CrashLoopBackOff|back-off/ },
    { behaviour: 'oom', state: 'crash-looping', failure: 'oom-killed', message: /OOMKilled/ },
    { behaviour: 'invalid-image', state: 'failed', failure: 'image-missing', message: /InvalidImageName/ },
    { behaviour: 'config-error', state: 'failed', failure: 'config-error', message: /CreateContainerConfigError: secret "missing" not found/ },
    { behaviour: 'image-pull', state: 'creating', failure: 'pulling', message: /ImagePullBackOff/ },
    { behaviour: 'unschedulable', state: 'creating', failure: 'unschedulable', message: /Insufficient cpu/ },
  ] as const;
  for (const c of cases) {
    test(`${c.behaviour}: ${c.state} (${c.failure}) with the cluster's message`, async () => {
      const backend = newBackend();
      const name = `fail-${c.behaviour}`;
      fake.kubelet.behave(({ deployment }) => (deployment === `berth-${name}` ? c.behaviour : 'run'));
      await backend.ensure(shared(name), signal);
      const instance = await waitFor(async () => (await ofUnit(backend, name)).find((i) => i.failure !== undefined));
      assert.equal(instance.state, c.state);
      assert.equal(instance.failure, c.failure);
      assert.match(instance.lastError ?? '', c.message);
      fake.kubelet.behave(() => 'run');
    });
  }

  test('a quota refusal is insufficient capacity, from the API or from the Deployment', async () => {
    const backend = newBackend();
    fake.quota.set('deployments', fake.store.list('deployments', undefined).length);
    await assert.rejects(backend.ensure(shared('over-quota'), signal), (err: unknown) => err instanceof BackendError && err.code === 'insufficient_capacity' && err.retryable && /exceeded quota/.test(err.message));
    fake.quota.clear();
    fake.kubelet.podQuota = fake.store.list('pods', undefined).length;
    const stop = new AbortController();
    const events: InstanceEvent[] = [];
    const consuming = (async () => {
      for await (const event of backend.events(stop.signal)) events.push(event);
    })();
    await backend.ensure(shared('no-pods'), signal);
    const placeholder = await waitFor(async () => (await ofUnit(backend, 'no-pods')).find((i) => i.failure === 'insufficient-capacity'));
    assert.equal(placeholder.state, 'failed');
    assert.match(placeholder.lastError ?? '', /exceeded quota/);
    // The refusal is on the Deployment, never on a pod: the events say so too, so a start waiting for the pod learns it.
    await waitFor(() => events.some((e) => e.kind === 'changed' && e.instance.id === placeholder.id && e.instance.failure === 'insufficient-capacity'), { message: 'an event for the refused placeholder' });
    stop.abort();
    await consuming;
    fake.kubelet.podQuota = Number.POSITIVE_INFINITY;
  });
});

describe('watching', () => {
  test('events arrive, and keep arriving after a dropped watch and after 410 Gone', async () => {
    const backend = newBackend();
    const stop = new AbortController();
    const seen: string[] = [];
    const consuming = (async () => {
      for await (const event of backend.events(stop.signal)) seen.push(event.kind === 'changed' ? `${event.instance.unit}:${event.instance.state}` : `removed:${event.unit}`);
    })();
    await backend.ensure(shared('watch-a'), signal);
    await waitFor(() => seen.includes('watch-a:running'), { message: 'first pod running' });
    fake.dropWatches();
    await backend.ensure(shared('watch-b'), signal);
    await waitFor(() => seen.includes('watch-b:running'), { message: 'event after a reconnect' });
    assert.ok(backend.watchStats.reconnects >= 1);
    fake.store.compact();
    fake.dropWatches();
    await backend.ensure(shared('watch-c'), signal);
    await waitFor(() => seen.includes('watch-c:running'), { message: 'event after 410 and a re-list' });
    await waitFor(() => backend.watchStats.relists >= 1, { message: 'a re-list' });
    stop.abort();
    await consuming;
  });

  test('a refused watch is tried again with backoff, not at once, and events arrive once it is allowed', async () => {
    // Its own owner: only this backend's requests carry its label selector.
    const backend = newBackend('refused');
    const selector = 'app.kubernetes.io/managed-by=berth,berth.dev/owner=refused';
    const requests = (verb: string): number[] => fake.requests.filter((r) => r.verb === verb && r.plural === 'pods' && r.labelSelector === selector).map((r) => r.at);
    const stop = new AbortController();
    const seen: string[] = [];
    fake.denied.add('watch:pods');
    const consuming = (async () => {
      for await (const event of backend.events(stop.signal)) if (event.kind === 'changed') seen.push(`${event.instance.unit}:${event.instance.state}`);
    })();
    try {
      // Before the fix: about 1,400 refused watches a second. Now 0.25–0.5 s, then 0.5–1 s, then 1–2 s apart.
      const watches = await waitFor(() => (requests('watch').length >= 4 ? requests('watch') : undefined), { timeoutMs: 15_000, message: 'four refused watches' });
      const gaps = watches.slice(1, 4).map((at, i) => at - (watches[i] ?? 0));
      gaps.forEach((gap, i) => assert.ok(gap >= 250 * 2 ** i - 5, `gap ${i + 1} between refused watches: ${gap.toFixed(0)} ms, at least ${250 * 2 ** i} ms`));
      assert.equal(requests('list').length, 1, 'the watch keeps the list\'s version: no re-list per refusal');
      assert.ok(backend.watchStats.failures >= 3);
    } finally {
      fake.denied.delete('watch:pods');
    }
    await backend.ensure(shared('refused-then-allowed'), signal);
    await waitFor(() => seen.includes('refused-then-allowed:running'), { timeoutMs: 15_000, message: 'events once the watch is allowed' });
    stop.abort();
    await consuming;
  });

  test('a consumer that falls behind gets each object once, as it is now: the queue holds one update per object', async () => {
    const backend = newBackend('coalesce');
    await backend.ensure(shared('busy'), signal);
    const pod = await waitFor(() => fake.store.list('pods', NAMESPACE).find((p) => (p.object.metadata as { labels?: Record<string, string> }).labels?.['berth.dev/owner'] === 'coalesce'), { message: 'the pod' });
    const podType = RESOURCES.find((t) => t.plural === 'pods');
    assert.ok(podType !== undefined);
    const stop = new AbortController();
    const events = backend.events(stop.signal)[Symbol.asyncIterator]();
    // Take one event, then stop taking: the consumer is busy elsewhere.
    await events.next();
    const received = backend.watchStats.received;
    const changes = 300;
    const name = String((pod.object.metadata as { name: string }).name);
    for (let i = 1; i <= changes; i++) {
      const live = fake.store.get('pods', NAMESPACE, name);
      assert.ok(live !== undefined);
      const metadata = live.object.metadata as { annotations?: Record<string, string> };
      fake.store.put(podType, NAMESPACE, { ...live.object, metadata: { ...metadata, annotations: { ...metadata.annotations, 'test/change': String(i) } } }, live.owners);
    }
    // The last change is visible in the event itself: the pod goes.
    fake.store.delete(podType, NAMESPACE, name);
    await waitFor(() => backend.watchStats.received - received >= changes + 1, { message: 'every change received by the watch' });
    const delivered: string[] = [];
    for (;;) {
      const next = await events.next();
      assert.equal(next.done, false);
      const event = next.value as InstanceEvent;
      delivered.push(event.kind === 'changed' ? `changed ${event.instance.id}` : `removed ${event.id}`);
      if (event.kind === 'removed' && event.id === name) break;
    }
    // The pod's 301 updates are at most two: the one the stream had taken before the consumer stalled
    // (events merge pods and Deployments, reading one ahead of each), then its removal.
    const ofPod = delivered.filter((d) => d.endsWith(name));
    assert.ok(ofPod.length <= 2 && ofPod.at(-1) === `removed ${name}`, `${ofPod.length} events delivered for ${changes + 1} changes of one pod`);
    stop.abort();
    await events.return?.(undefined);
  });

  test('a ready pod that cannot be read at first is routed once it can be, without its slice changing', async () => {
    const logged: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line !== '') logged.push((JSON.parse(line) as { msg: string }).msg);
        done();
      },
    });
    const backend = newBackend('berth', pino({ level: 'warn' }, sink));
    const versions = (): string[] => (fake.store.list('endpointslices', NAMESPACE) ?? []).map((s) => s.object.metadata as { name: string; resourceVersion: string }).filter((m) => m.name.startsWith('berth-unread')).map((m) => `${m.name}@${m.resourceVersion}`);
    const readySlice = (): unknown => (fake.store.list('endpointslices', NAMESPACE) ?? []).find((s) => (s.object.metadata as { name: string }).name.startsWith('berth-unread') && ((s.object.endpoints ?? []) as { conditions?: { ready?: boolean } }[]).some((e) => e.conditions?.ready === true));
    const stop = new AbortController();
    const updates: PlacementReplicas[] = [];
    const consuming = (async () => {
      for await (const update of backend.replicas(stop.signal)) if (update.unit === 'unread') updates.push(update);
    })();
    fake.denied.add('get:pods');
    let before: string[];
    try {
      await backend.ensure(shared('unread'), signal);
      // Logged only when a slice's endpoint is ready and its pod could not be read.
      await waitFor(() => logged.includes('cannot read a ready pod; trying again'), { message: 'a ready endpoint whose pod cannot be read' });
      // The fake's slice controller may still be moving the endpoint into the slice named for its
      // port; compare from the moment a ready endpoint sits in its final slice.
      await waitFor(() => readySlice() !== undefined, { message: 'a slice with the ready endpoint' });
      assert.ok(updates.every((u) => u.ready.length === 0), 'nothing routed while the pod cannot be read');
      before = versions();
    } finally {
      fake.denied.delete('get:pods');
    }
    const routed = await waitFor(() => updates.find((u) => u.ready.length === 1), { timeoutMs: 10_000, message: 'the pod routed after the reads are allowed' });
    assert.equal(routed.ready[0]?.specHash, (await ofUnit(backend, 'unread'))[0]?.specHash);
    assert.deepEqual(versions(), before, 'no slice changed meanwhile');
    stop.abort();
    await consuming;
  });

  test('logs are the pod\'s newest lines', async () => {
    const backend = newBackend();
    await backend.ensure(shared('logged'), signal);
    const pod = await waitFor(async () => (await ofUnit(backend, 'logged')).find((i) => i.state === 'running'));
    assert.deepEqual(await backend.logs(pod.id, 1, signal), ['server listening']);
  });
});

describe('RBAC self-check', () => {
  test('passes with every permission, and names each missing verb', async () => {
    const backend = newBackend();
    await backend.checkAccess(signal);
    fake.denied.add('watch:pods');
    fake.denied.add('delete:secrets');
    await assert.rejects(backend.checkAccess(signal), (err: unknown) => err instanceof BackendError && err.code === 'forbidden' && /may not, in namespace default: delete secrets, watch pods/.test(err.message));
    fake.denied.clear();
  });
});
