import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { hashUser } from '../../src/desired/hash.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import type { Unit } from '../../src/desired/types.ts';
import { egressBlocks } from '../../src/backends/kubernetes/egress.ts';
import type { KubeObject } from '../../src/backends/kubernetes/objects.ts';
import { ANNOTATIONS, LABELS } from '../../src/backends/labels.ts';
import { placementName, renderPlacement } from '../../src/backends/kubernetes/objects.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { checkKubeObject } from '../helpers/kube-models.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/valid/${name}.yaml`, import.meta.url));
const ENV = { HOME: '/root' };

function load(name: string): { units: readonly Unit[]; settings: ReturnType<typeof resolveKubernetesSettings> } {
  const loaded = loadConfigFile(fixture(name), ENV);
  return { units: resolveDesiredState(loaded).units, settings: resolveKubernetesSettings(loaded.config.backend) };
}

function unitNamed(units: readonly Unit[], name: string): Unit {
  const unit = units.find((u) => u.name === name);
  assert.ok(unit, `unit ${name}`);
  return unit;
}

const kind = (objects: readonly KubeObject[], k: string): KubeObject | undefined => objects.find((o) => o.kind === k);
type Deployment = { spec: { replicas?: number; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } } };
const deployment = (objects: readonly KubeObject[]): Deployment => kind(objects, 'Deployment') as unknown as Deployment;

test('every generated object passes the official API models', async () => {
  for (const name of ['kubernetes', 'kubernetes-pods']) {
    const { units, settings } = load(name);
    for (const unit of units) {
      const placement = unit.scope === 'per-user' ? { unit, user: { hash: hashUser('alice@example.com', 'test-label-secret'), env: { NOTES_TOKEN: 't0k', GITHUB_TOKEN: 'ghp' } } } : { unit };
      for (const object of renderPlacement(placement, settings).objects) assert.deepEqual(await checkKubeObject(object), [], `${name}: ${unit.name}`);
    }
  }
});

test('pods run with the security defaults and the pod settings', () => {
  const { units, settings } = load('kubernetes-pods');
  const pod = deployment(renderPlacement({ unit: unitNamed(units, 'everything') }, settings).objects).spec.template.spec;
  assert.equal(pod.automountServiceAccountToken, false);
  assert.equal(pod.enableServiceLinks, false);
  assert.deepEqual(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  assert.equal(pod.runtimeClassName, 'gvisor');
  // The server's own keys replace the backend's, key by key.
  assert.deepEqual(pod.nodeSelector, { pool: 'big' });
  assert.deepEqual(pod.imagePullSecrets, [{ name: 'registry' }, { name: 'mirror' }]);
  const container = pod.containers[0] ?? {};
  assert.deepEqual(container.securityContext, { allowPrivilegeEscalation: false, privileged: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  assert.deepEqual(container.volumeMounts, [{ name: 'writable-0', mountPath: '/tmp' }]);
  assert.deepEqual(pod.volumes, [{ name: 'writable-0', emptyDir: {} }]);
  assert.deepEqual(container.resources, { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '500m', memory: '256Mi' } });
  const github = deployment(renderPlacement({ unit: unitNamed(units, 'github'), user: { hash: hashUser('a', 'test-label-secret'), env: { GITHUB_TOKEN: 'x' } } }, settings).objects).spec.template.spec;
  assert.equal(github.runtimeClassName, 'kata');
  assert.deepEqual((github.containers[0]?.securityContext as { readOnlyRootFilesystem: boolean }).readOnlyRootFilesystem, false);
  assert.deepEqual(github.volumes, [{ name: 'writable-0', emptyDir: {} }, { name: 'writable-1', emptyDir: {} }]);
});

test('stdio servers run in the bridge image behind `berth bridge`, its entrypoint', () => {
  const { units, settings } = load('kubernetes-pods');
  const container = deployment(renderPlacement({ unit: unitNamed(units, 'everything') }, settings).objects).spec.template.spec.containers[0];
  assert.equal(container?.image, 'registry.example.com/berth:0.1.0');
  assert.equal(container?.command, undefined, 'the image runs berth; there is no `berth` on its PATH');
  assert.deepEqual(container?.args, ['bridge', '--host', '0.0.0.0', '--port', '8080', '--', 'npx', '-y', '@modelcontextprotocol/server-everything@2026.8.31']);
  assert.deepEqual(container?.env, [{ name: 'HOME', value: '/tmp' }]);
});

test('labels carry owner, server, user hash and spec hash; a shared pod template never names a user', () => {
  const { units, settings } = load('kubernetes-pods');
  const shared = renderPlacement({ unit: unitNamed(units, 'everything') }, settings);
  const labels = deployment(shared.objects).spec.template.metadata.labels;
  assert.deepEqual(Object.keys(labels).sort(), [LABELS.managedBy, LABELS.owner, LABELS.server, LABELS.specHash].sort());
  const github = unitNamed(units, 'github');
  const user = hashUser('alice@example.com', 'test-label-secret');
  const own = renderPlacement({ unit: github, user: { hash: user, env: { GITHUB_TOKEN: 'ghp_secret' } } }, settings);
  assert.equal(deployment(own.objects).spec.template.metadata.labels[LABELS.user], user);
  const text = JSON.stringify(own.objects.filter((o) => o.kind !== 'Secret'));
  assert.ok(!text.includes('alice'), 'no raw identity anywhere');
  assert.ok(!text.includes('ghp_secret'), 'credentials only in the Secret');
});

test('a changed secret changes only the Secret and the pod template checksum', () => {
  const { units, settings } = load('kubernetes-pods');
  const github = unitNamed(units, 'github');
  const user = hashUser('bob', 'test-label-secret');
  const before = renderPlacement({ unit: github, user: { hash: user, env: { GITHUB_TOKEN: 'one' } } }, settings).objects;
  const after = renderPlacement({ unit: github, user: { hash: user, env: { GITHUB_TOKEN: 'two' } } }, settings).objects;
  const changed = before.filter((o, i) => JSON.stringify(o) !== JSON.stringify(after[i])).map((o) => o.kind);
  assert.deepEqual(changed.sort(), ['Deployment', 'Secret']);
  const checksum = (objects: readonly KubeObject[]): string | undefined => deployment(objects).spec.template.metadata.annotations?.[ANNOTATIONS.secretChecksum];
  assert.notEqual(checksum(before), checksum(after));
  const env = deployment(after).spec.template.spec.containers[0]?.env;
  assert.deepEqual(env, [{ name: 'GITHUB_TOKEN', valueFrom: { secretKeyRef: { name: placementName('berth', 'github', user), key: 'GITHUB_TOKEN' } } }]);
});

test('a disruption budget only with replicas; under an autoscaler berth leaves replicas alone', () => {
  const { units, settings } = load('kubernetes');
  const search = renderPlacement({ unit: unitNamed(units, 'search') }, settings).objects;
  assert.equal(deployment(search).spec.replicas, 4);
  assert.ok(kind(search, 'PodDisruptionBudget'));
  assert.equal(kind(search, 'NetworkPolicy'), undefined, 'networkPolicy: false');
  const notes = renderPlacement({ unit: unitNamed(units, 'notes'), user: { hash: hashUser('x', 'test-label-secret'), env: {} } }, settings).objects;
  assert.equal(kind(notes, 'PodDisruptionBudget'), undefined);
  const pods = load('kubernetes-pods');
  const everything = renderPlacement({ unit: unitNamed(pods.units, 'everything') }, pods.settings).objects;
  assert.equal(deployment(everything).spec.replicas, undefined);
  assert.deepEqual((kind(everything, 'HorizontalPodAutoscaler')?.spec as { minReplicas: number; maxReplicas: number }).maxReplicas, 5);
});

test('the network policy admits only berth and denies egress but DNS and declared CIDRs', () => {
  const { units, settings } = load('kubernetes-pods');
  const policy = kind(renderPlacement({ unit: unitNamed(units, 'everything') }, settings).objects, 'NetworkPolicy');
  const spec = policy?.spec as { policyTypes: string[]; ingress: unknown[]; egress: { to: unknown[] }[] };
  assert.deepEqual(spec.policyTypes, ['Ingress', 'Egress']);
  assert.deepEqual(spec.ingress, [{ from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'berth', 'app.kubernetes.io/instance': 'prod' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }]);
  assert.equal(spec.egress.length, 2);
  // The server declares its own egress, replacing the backend's 0.0.0.0/0: a private block, allowed as declared.
  assert.deepEqual(spec.egress[1]?.to, [{ ipBlock: { cidr: '10.20.0.0/16' } }]);
});

test('egress blocks cut refused ranges out of declared CIDRs unless declared themselves', async (t) => {
  const cases: { name: string; declared: string[]; cidr: string; excepts: string[]; allows?: string[] }[] = [
    { name: 'the IPv4 internet', declared: ['0.0.0.0/0'], cidr: '0.0.0.0/0', excepts: ['10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8'] },
    { name: 'the IPv6 internet', declared: ['::/0'], cidr: '::/0', excepts: ['fc00::/7', 'fe80::/10', '::1/128'] },
    { name: 'a declared private block', declared: ['10.1.0.0/16'], cidr: '10.1.0.0/16', excepts: [] },
    { name: 'the metadata endpoint itself', declared: ['169.254.169.254/32'], cidr: '169.254.169.254/32', excepts: [] },
    { name: 'a public /8 around nothing reserved', declared: ['8.0.0.0/8'], cidr: '8.0.0.0/8', excepts: [] },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const block = egressBlocks(c.declared).find((b) => b.cidr === c.cidr);
      assert.ok(block);
      for (const range of c.excepts) assert.ok(block.except?.includes(range), `${range} cut out of ${c.cidr}`);
      if (c.excepts.length === 0) assert.equal(block.except, undefined);
    });
  }
  // The API server refuses an IPv4-mapped block (::ffff:0:0/96) in a NetworkPolicy: found on a real cluster.
  assert.deepEqual(egressBlocks(['::/0'])[0]?.except?.filter((e) => e.startsWith('::ffff:')), []);
});

test('names are DNS labels and deterministic, however long the server name', () => {
  const long = 'a'.repeat(63);
  const name = placementName('berth', long, hashUser('someone', 'test-label-secret'));
  assert.ok(name.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name), name);
  assert.equal(name, placementName('berth', long, hashUser('someone', 'test-label-secret')));
  assert.notEqual(name, placementName('berth', long, hashUser('someone else', 'test-label-secret')));
  const { units, settings } = load('kubernetes');
  const unit = unitNamed(units, 'search');
  assert.deepEqual(renderPlacement({ unit }, settings), renderPlacement({ unit }, settings));
});

test('an HTTP command server runs as is, told its port in PORT', () => {
  const loaded = parseConfig('berth.yaml', 'version: 1\nbackend: { type: kubernetes }\nservers:\n  web:\n    type: multi-user\n    runtime: command\n    command: mcp-web\n    args: [--verbose]\n    transport: streamable-http\n    path: /api/mcp\n', { env: {}, readFile: () => '', baseDir: '/' });
  assert.ok(loaded.ok);
  const rendered = renderPlacement({ unit: unitNamed(resolveDesiredState(loaded.value).units, 'web') }, resolveKubernetesSettings(loaded.value.config.backend));
  const container = deployment(rendered.objects).spec.template.spec.containers[0];
  assert.deepEqual(container?.command, ['mcp-web', '--verbose']);
  assert.deepEqual(container?.env, [{ name: 'HOME', value: '/tmp' }, { name: 'PORT', value: '8080' }]);
  assert.equal(rendered.path, '/api/mcp');
});
