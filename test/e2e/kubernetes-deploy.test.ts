// berth itself in the real cluster (scripts/cluster.sh), from deploy/kubernetes
// as users apply it: `kubectl apply -k` of an overlay that changes only the
// namespace, the image (berth's own, built without a registry and imported
// into the node's containerd) and the servers in berth.yaml. berth checks its
// Role with its pod's service-account token, serves /healthz on its pod
// address, starts a server pod and routes an MCP call from this host to it.
// A Role missing verbs stops it at start-up, naming them. Skipped without
// BERTH_TEST_KUBECONFIG; failing instead in CI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { parse, stringify } from 'yaml';
import { LABELS } from '../../src/backends/labels.ts';
import { repoRoot } from '../helpers/berth.ts';
import { CLUSTER_ENV, EVERYTHING_IMAGE, realClusterOrSkip, testNamespace } from '../helpers/cluster.ts';
import { docker, testImages } from '../helpers/docker.ts';
import { kubectl, kubectlMissing } from '../helpers/kubectl.ts';
import { waitFor } from '../helpers/wait.ts';

const real = realClusterOrSkip();
const base = path.join(repoRoot, 'deploy/kubernetes');
const KEY = 'berth_deploy-test-0123456789abcdef';
const POD_MS = 120_000;

/** Why this file cannot run on the cluster it was given (it imports an image into the node), or undefined. */
function unsupported(): string | undefined {
  if ('skip' in real) return real.skip;
  const missing = kubectlMissing();
  const env = spawnSync('bash', [path.join(repoRoot, 'scripts/cluster.sh'), 'env'], { encoding: 'utf8' });
  const ours = env.status === 0 && env.stdout.trim() === `KUBECONFIG=${process.env[CLUSTER_ENV]}`;
  const reason = missing ?? (ours ? undefined : `${CLUSTER_ENV} is not the cluster scripts/cluster.sh runs: berth's image can only be imported into that one's node`);
  if (reason !== undefined && process.env.CI === 'true') throw new Error(`${reason}; CI must run berth in the cluster`);
  return reason;
}
const SKIP = unsupported() ?? false;

let config: k8s.KubeConfig;
let image = '';
const namespaces: { name: string; remove: () => Promise<void> }[] = [];
const dirs: string[] = [];

before(async () => {
  if (SKIP !== false || !('cluster' in real)) return;
  config = real.cluster.config;
  const built = testImages().BERTH_IMAGE;
  // A tag per build of berth: a pod never starts an older berth under the same name.
  const tag = built.split(':')[1] ?? 'local';
  await docker.getImage(built).tag({ repo: 'berth.test/berth', tag });
  image = `berth.test/berth:${tag}`;
  const imported = spawnSync('bash', [path.join(repoRoot, 'scripts/cluster.sh'), 'import', image], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(imported.status, 0, `scripts/cluster.sh import: ${imported.stderr}`);
}, { timeout: 900_000 });

after(async () => {
  for (const namespace of namespaces) await namespace.remove();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * deploy/kubernetes applied with `kubectl apply -k` through an overlay: the
 * namespace, berth's image, and berth.yaml's backend namespace, servers and an
 * API key (berth listens on the pod network, where anonymous clients are refused).
 * `rolePatch` changes the Role, as a cluster admin might by mistake.
 */
async function applyBase(rolePatch?: object[]): Promise<string> {
  const namespace = await testNamespace(config, 'berth-deploy');
  namespaces.push(namespace);
  const shipped = parse(readFileSync(path.join(base, 'configmap.yaml'), 'utf8')) as { data: { 'berth.yaml': string } };
  const berthYaml = parse(shipped.data['berth.yaml']) as Record<string, unknown> & { backend: Record<string, unknown> };
  berthYaml.backend.namespace = namespace.name;
  berthYaml.auth = [{ type: 'apiKey', keys: [{ user: 'tester', key: KEY }] }];
  berthYaml.servers = { everything: { type: 'multi-user', runtime: 'container', image: EVERYTHING_IMAGE, port: 3001 } };
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-deploy-'));
  dirs.push(dir);
  const [name, tag] = image.split(':');
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    namespace: namespace.name,
    // kustomize takes a base by relative path only.
    resources: [path.relative(dir, base)],
    images: [{ name: 'ghcr.io/berth-dev/berth', newName: name, newTag: tag }],
    patches: [
      { patch: stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'berth-config' }, data: { 'berth.yaml': stringify(berthYaml) } }) },
      ...(rolePatch === undefined ? [] : [{ target: { kind: 'Role', name: 'berth' }, patch: JSON.stringify(rolePatch) }]),
    ],
  };
  writeFileSync(path.join(dir, 'kustomization.yaml'), stringify(kustomization));
  const applied = kubectl(['apply', '-k', dir]);
  assert.equal(applied.status, 0, applied.stderr);
  assert.deepEqual(applied.stdout.trim().split('\n').map((line) => line.split(' ')[0]).sort(), [
    'configmap/berth-config', 'deployment.apps/berth', 'role.rbac.authorization.k8s.io/berth', 'rolebinding.rbac.authorization.k8s.io/berth', 'service/berth', 'serviceaccount/berth',
  ]);
  return namespace.name;
}

const core = (): k8s.CoreV1Api => config.makeApiClient(k8s.CoreV1Api);

async function berthPods(namespace: string): Promise<k8s.V1Pod[]> {
  return (await core().listNamespacedPod({ namespace, labelSelector: 'app.kubernetes.io/name=berth' })).items;
}

/** berth's own log, current and previous container, for a failure message or an assertion. */
async function berthLog(namespace: string): Promise<string> {
  const logs = await Promise.all((await berthPods(namespace)).map(async (pod) => {
    const read = (previous: boolean): Promise<string> => core().readNamespacedPodLog({ name: pod.metadata?.name ?? '', namespace, container: 'berth', previous, tailLines: 40 }).catch(() => '');
    return `${await read(true)}${await read(false)}`;
  }));
  return logs.join('\n');
}

async function callEcho(url: string): Promise<string | undefined> {
  const client = new Client({ name: 'deploy-test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { 'x-api-key': KEY } } }));
  try {
    const result = (await client.callTool({ name: 'echo', arguments: { message: 'through berth in the cluster' } })) as CallToolResult;
    return (result.content[0] as { text: string }).text;
  } finally {
    await client.close();
  }
}

describe('berth in the cluster from deploy/kubernetes', { skip: SKIP }, () => {
  test('passes its RBAC self-check with its service-account token, serves /healthz, and routes an MCP call to a pod it started', { timeout: 300_000 }, async () => {
    const namespace = await applyBase();
    try {
      const pod = await waitFor(async () => (await berthPods(namespace)).find((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')), { timeoutMs: POD_MS, intervalMs: 500, message: 'berth\'s pod ready (its /readyz probe passing)' });
      // The token berth checked its Role with is its pod's own, from the ServiceAccount the base makes.
      assert.equal(pod.spec?.serviceAccountName, 'berth');
      assert.ok(pod.spec?.volumes?.some((v) => v.projected?.sources?.some((s) => s.serviceAccountToken !== undefined)), 'a projected service-account token');
      const address = pod.status?.podIP ?? '';
      assert.match(address, /^10\.244\.0\.\d+$/, 'berth on the pod network');
      const health = await fetch(`http://${address}:8080/healthz`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });
      assert.equal(await waitFor(() => callEcho(`http://${address}:8080/mcp/everything`), { timeoutMs: POD_MS, intervalMs: 1_000, message: 'an MCP answer through berth' }), 'Echo: through berth in the cluster');
      // The server is a Deployment berth applied in its namespace, its pod beside berth's.
      const servers = await config.makeApiClient(k8s.AppsV1Api).listNamespacedDeployment({ namespace, labelSelector: `${LABELS.managedBy}=berth` });
      assert.deepEqual(servers.items.map((d) => d.metadata?.name), ['berth-everything']);
      // The base's state path is on the writable volume: berth keeps its user label secret across restarts.
      assert.doesNotMatch(await berthLog(namespace), /cannot keep the user label secret/);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nberth's log:\n${await berthLog(namespace)}`, { cause: err });
    }
  });

  test('a Role missing verbs: berth refuses to start and names each one', { timeout: 180_000 }, async () => {
    // Services and secrets without `delete`, as a hand-edited Role might have them.
    const namespace = await applyBase([{ op: 'replace', path: '/rules/1/verbs', value: ['get', 'create', 'patch'] }]);
    const log = await waitFor(async () => {
      const text = await berthLog(namespace);
      return text.includes('may not') ? text : undefined;
    }, { timeoutMs: POD_MS, intervalMs: 1_000, message: 'berth\'s refusal in its log' });
    assert.match(log, new RegExp(`berth's service account may not, in namespace ${namespace}: delete services, delete secrets;`));
    const pod = (await berthPods(namespace))[0];
    assert.notEqual(pod?.status?.containerStatuses?.[0]?.ready, true, 'berth never became ready');
    const servers = await config.makeApiClient(k8s.AppsV1Api).listNamespacedDeployment({ namespace, labelSelector: `${LABELS.managedBy}=berth` });
    assert.equal(servers.items.length, 0, 'berth wrote nothing before its check passed');
  });
});
