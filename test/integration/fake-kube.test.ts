// The fake API server keeps the semantics berth relies on; checked through
// the real @kubernetes/client-node, as the backend uses it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { FakeKube } from '../helpers/fake-kube/server.ts';
import { API_CASES } from '../helpers/kube-api-cases.ts';
import { waitFor } from '../helpers/wait.ts';

const fake = new FakeKube();
let api: k8s.KubernetesObjectApi;
let kc: k8s.KubeConfig;
before(async () => {
  await fake.start();
  kc = new k8s.KubeConfig();
  kc.loadFromOptions(fake.kubeconfig());
  api = k8s.KubernetesObjectApi.makeApiClient(kc);
});
after(() => fake.close());

const deployment = (name: string, replicas: number, image = 'example/a:1') => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'default', labels: { app: name } },
  spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'server', image, ports: [{ name: 'mcp', containerPort: 8080 }] }] } } },
});
const apply = (object: k8s.KubernetesObject & { spec?: unknown }, manager = 'berth', force = false) => api.patch(object, undefined, undefined, manager, force, k8s.PatchStrategy.ServerSideApply);
const codeOf = async (promise: Promise<unknown>): Promise<number> => promise.then(() => 200, (err: { code?: number }) => err.code ?? 0);

test('server-side apply: create, no-op, conflicts between managers, force', async () => {
  await apply(deployment('ssa', 1));
  const settled = (): string | undefined => {
    const object = fake.store.get('deployments', 'default', 'ssa')?.object;
    return (object?.status as { readyReplicas?: number } | undefined)?.readyReplicas === 1 ? String((object?.metadata as { resourceVersion: string }).resourceVersion) : undefined;
  };
  const rv = await waitFor(settled, { timeoutMs: 3000 });
  const again = await apply(deployment('ssa', 1));
  assert.equal(again.metadata?.resourceVersion, rv, 'an unchanged apply stores nothing');
  assert.equal(await codeOf(apply(deployment('ssa', 3), 'kubectl')), 409, 'another manager changing an owned field conflicts');
  const forced = await apply(deployment('ssa', 3), 'kubectl', true);
  assert.equal((forced as k8s.V1Deployment).spec?.replicas, 3);
  const managers = (forced.metadata?.managedFields ?? []).map((f) => f.manager).sort();
  assert.deepEqual(managers, ['berth', 'kubectl']);
  // berth no longer owns replicas: re-applying its old value now conflicts the other way.
  assert.equal(await codeOf(apply(deployment('ssa', 1))), 409);
});

test('a field a manager stops applying is removed unless another manager owns it', async () => {
  await apply({ ...deployment('prune', 1), metadata: { name: 'prune', namespace: 'default', labels: { app: 'prune', extra: 'x' } } });
  const pruned = await apply(deployment('prune', 1));
  assert.equal(pruned.metadata?.labels?.extra, undefined);
});

test('optimistic concurrency: a PUT with a stale resourceVersion is 409', async () => {
  await apply(deployment('occ', 0));
  const live = await api.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'occ', namespace: 'default' } });
  const fresh = await api.replace({ ...live, metadata: { ...live.metadata, labels: { app: 'occ', edited: 'yes' } } }, undefined, undefined, 'kubectl-edit');
  assert.notEqual(fresh.metadata?.resourceVersion, live.metadata?.resourceVersion);
  assert.equal(await codeOf(api.replace({ ...live, metadata: { ...live.metadata, labels: { app: 'occ', edited: 'again' } } })), 409);
});

test('the kubelet runs pods, a template change is one rollout, services get endpoint slices', async () => {
  await apply(deployment('run', 2));
  await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'run', namespace: 'default' }, spec: { selector: { app: 'run' }, ports: [{ name: 'mcp', port: 80, targetPort: 'mcp' }] } });
  const pods = async (): Promise<k8s.KubernetesObject[]> => (await api.list('v1', 'Pod', 'default', undefined, undefined, undefined, undefined, 'app=run')).items;
  await waitFor(async () => (await pods()).filter((p) => (p as k8s.V1Pod).status?.phase === 'Running').length === 2, { timeoutMs: 5000 });
  await apply(deployment('run', 2, 'example/a:2'));
  await waitFor(async () => (await pods()).every((p) => (p as k8s.V1Pod).spec?.containers[0]?.image === 'example/a:2' && (p as k8s.V1Pod).status?.phase === 'Running') && (await pods()).length === 2, { timeoutMs: 5000 });
  assert.equal(fake.kubelet.rolloutsOf('run'), 1);
  const slices = await api.list('discovery.k8s.io/v1', 'EndpointSlice', 'default', undefined, undefined, undefined, undefined, 'kubernetes.io/service-name=run');
  const endpoints = (slices.items[0] as k8s.V1EndpointSlice | undefined)?.endpoints ?? [];
  assert.equal(endpoints.length, 2);
  assert.deepEqual(JSON.parse(JSON.stringify((slices.items[0] as k8s.V1EndpointSlice).ports)), [{ name: 'mcp', protocol: 'TCP', port: 8080 }]);
});

test('the status subresource changes status only; the main resource never changes status', async () => {
  await apply(deployment('status', 0));
  const live = fake.store.get('deployments', 'default', 'status')?.object;
  assert.ok(live);
  await api.replace({ ...(live as unknown as k8s.V1Deployment), status: { replicas: 99 } } as k8s.KubernetesObject, undefined, undefined, 'x');
  await waitFor(() => (fake.store.get('deployments', 'default', 'status')?.object.status as { replicas?: number } | undefined)?.replicas === 0, { timeoutMs: 2000 });
});

test('watches: events after a version, bookmarks, 410 Gone once compacted', async () => {
  const start = String(fake.store.resourceVersion);
  await apply(deployment('watched', 0));
  const seen: string[] = [];
  const watch = new k8s.Watch(kc);
  const controller = await watch.watch('/apis/apps/v1/namespaces/default/deployments', { resourceVersion: start, allowWatchBookmarks: true, labelSelector: 'app=watched' }, (type, object: k8s.KubernetesObject) => seen.push(`${type} ${object.metadata?.name ?? ''}`), () => seen.push('done'));
  await waitFor(() => seen.includes('ADDED watched') && seen.some((s) => s.startsWith('BOOKMARK')), { timeoutMs: 3000 });
  controller.abort();
  fake.store.compact();
  const gone: unknown[] = [];
  const second = await watch.watch('/apis/apps/v1/namespaces/default/deployments', { resourceVersion: start }, (type, object: { code?: number }) => gone.push([type, object.code]), () => gone.push('done'));
  await waitFor(() => gone.includes('done'), { timeoutMs: 3000 });
  second.abort();
  assert.deepEqual(gone[0], ['ERROR', 410]);
});

test('label selectors, RBAC answers and quotas', async () => {
  await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'sel-a', namespace: 'default', labels: { tier: 'a', keep: '1' } } });
  await apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'sel-b', namespace: 'default', labels: { tier: 'b' } } });
  const names = async (selector: string): Promise<string[]> => (await api.list('v1', 'ConfigMap', 'default', undefined, undefined, undefined, undefined, selector)).items.map((i) => i.metadata?.name ?? '');
  assert.deepEqual(await names('tier in (a,b),!keep'), ['sel-b']);
  assert.deepEqual(await names('tier!=b'), ['sel-a']);
  fake.denied.add('delete:configmaps');
  assert.equal(await codeOf(api.delete({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'sel-a', namespace: 'default' } })), 403);
  const review = await kc.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb: 'delete', resource: 'configmaps', namespace: 'default' } } } });
  assert.equal(review.status?.allowed, false);
  fake.denied.clear();
  fake.quota.set('configmaps', 2);
  assert.equal(await codeOf(apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'sel-c', namespace: 'default' } })), 403);
  fake.quota.clear();
});

// The cases the real control plane runs too (kubernetes-cases-real.test.ts).
for (const c of API_CASES) test(`as a real API server: ${c.name}`, () => c.run({ config: kc, namespace: 'default', image: 'example/a:1', podMs: 5_000 }));
