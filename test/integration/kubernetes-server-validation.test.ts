// Every manifest berth ships or generates, validated by the real API server
// (scripts/cluster.sh) with `kubectl apply --dry-run=server`: field
// validation strict, admission (Pod Security `restricted` warns about any pod
// template that would be refused), nothing stored. The kustomize base as
// `kubectl apply -k` applies it, the Helm chart as a real `helm template`
// (helm v4, scripts/helm.sh) renders it, and `berth render` plus the per-user
// objects berth makes at first use. Skipped without BERTH_TEST_KUBECONFIG;
// failing instead in CI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, parseAllDocuments, stringify } from 'yaml';
import type { KubeObject } from '../../src/backends/kubernetes/objects.ts';
import { renderPlacement } from '../../src/backends/kubernetes/objects.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { hashUser } from '../../src/desired/hash.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import { repoRoot } from '../helpers/berth.ts';
import { realClusterOrSkip, testNamespace } from '../helpers/cluster.ts';
import type { KubectlResult } from '../helpers/kubectl.ts';
import { kubectl, kubectlMissing } from '../helpers/kubectl.ts';

const real = realClusterOrSkip();
const missing = 'skip' in real ? undefined : kubectlMissing();
if (missing !== undefined && process.env.CI === 'true') throw new Error(`${missing}; CI must validate against the real API server`);
const SKIP = 'skip' in real ? real.skip : (missing ?? false);
const base = path.join(repoRoot, 'deploy/kubernetes');
const chart = path.join(repoRoot, 'deploy/helm/berth');
const fixtures = ['kubernetes', 'kubernetes-pods'].map((name) => path.join(repoRoot, `test/fixtures/valid/${name}.yaml`));
/** A cold build of helm takes minutes; a cached one, none. */
const HELM_BUILD_MS = 1_800_000;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<string, unknown>;
let namespace = '';
let removeNamespace = async (): Promise<void> => undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'berth-validation-'));

before(async () => {
  if (SKIP !== false || !('cluster' in real)) return;
  ({ name: namespace, remove: removeNamespace } = await testNamespace(real.cluster.config, 'berth-validate'));
  const built = spawnSync('bash', [path.join(repoRoot, 'scripts/helm.sh'), 'build'], { encoding: 'utf8', timeout: HELM_BUILD_MS });
  assert.equal(built.status, 0, `scripts/helm.sh build: ${built.stderr}`);
}, { timeout: HELM_BUILD_MS + 60_000 });

after(async () => {
  await removeNamespace();
  rmSync(dir, { recursive: true, force: true });
});

function documents(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Obj | null).filter((o): o is Obj => o !== null);
}

/** The API server took every object (`… (server dry run)` each), with no warning at all: none from Pod Security, none deprecated. */
function assertAccepted(result: KubectlResult, objects: number): void {
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim().split('\n').filter((line) => line.endsWith('(server dry run)')).length, objects, result.stdout);
  assert.doesNotMatch(result.stderr, /warning/i);
}

const dryRun = (objects: readonly Obj[] | string): KubectlResult => kubectl(['apply', '--dry-run=server', '-f', '-'], typeof objects === 'string' ? objects : objects.map((o) => `---\n${stringify(o)}`).join(''));

/** An overlay of the base that only moves it into the run's namespace (kustomize takes a base by relative path only). */
function overlay(): string {
  const at = path.join(dir, 'overlay');
  mkdirSync(at, { recursive: true });
  writeFileSync(path.join(at, 'kustomization.yaml'), stringify({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', namespace, resources: [path.relative(at, base)] }));
  return at;
}

/** A config fixture as written, moved into the run's namespace. */
function fixtureInNamespace(fixture: string): string {
  const file = path.join(dir, path.basename(fixture));
  writeFileSync(file, readFileSync(fixture, 'utf8').replace(/^( {2}namespace:) .*$/m, `$1 ${namespace}`));
  return file;
}

function render(file: string, ...args: string[]): string {
  const result = spawnSync(process.execPath, [path.join(repoRoot, 'bin/berth.js'), 'render', file, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

describe('the API server validates what berth ships and generates', { skip: SKIP }, () => {
  test('`kubectl apply -k deploy/kubernetes --dry-run=server`: every object of the base accepted', () => {
    assertAccepted(kubectl(['apply', '-k', overlay(), '--dry-run=server']), 6);
  });

  test('`helm template` (helm v4) renders the chart: every object accepted, and equal to the kustomize base', () => {
    const version = spawnSync('bash', [path.join(repoRoot, 'scripts/helm.sh'), 'version', '--short'], { encoding: 'utf8' });
    assert.match(version.stdout, /^v4\.\d+\.\d+/, version.stderr);
    const rendered = spawnSync('bash', [path.join(repoRoot, 'scripts/helm.sh'), 'template', 'berth', chart, '--namespace', namespace], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(rendered.status, 0, rendered.stderr);
    const objects = documents(rendered.stdout);
    assertAccepted(dryRun(rendered.stdout), objects.length);
    // The chart mirrors the base: the same objects once kustomize's part-of label is set aside.
    const built = kubectl(['kustomize', overlay()]);
    assert.equal(built.status, 0, built.stderr);
    const key = (o: Obj): string => `${o.kind}/${o.metadata.name}`;
    // berth.yaml compared as YAML: the two files' comments differ.
    const comparable = (o: Obj): Obj => (o.kind === 'ConfigMap' ? { ...o, data: { 'berth.yaml': parse((o.data as Record<string, string>)['berth.yaml'] ?? '') as unknown } } : o);
    const fromBase = documents(built.stdout).map((o) => {
      const { 'app.kubernetes.io/part-of': _partOf, ...labels } = o.metadata.labels ?? {};
      return comparable({ ...o, metadata: { ...o.metadata, labels } });
    });
    assert.deepEqual(objects.map(key).sort(), fromBase.map(key).sort());
    for (const object of objects) assert.deepEqual(comparable(object), fromBase.find((o) => key(o) === key(object)), key(object));
  });

  test('every object berth generates (`berth render`, and per-user objects) passes validation and Pod Security `restricted`', () => {
    const generated: Obj[] = [];
    for (const fixture of fixtures) {
      const file = fixtureInNamespace(fixture);
      generated.push(...documents(render(file, '--secrets', 'include')));
      // Single-user servers are not rendered: their objects exist per user, from the first request on.
      const loaded = loadConfigFile(file, { HOME: '/root' });
      const settings = resolveKubernetesSettings(loaded.config.backend);
      assert.equal(settings.namespace, namespace);
      for (const unit of resolveDesiredState(loaded).units.filter((u) => u.scope === 'per-user')) {
        const user = { hash: hashUser('alice@example.com', 'test-label-secret'), env: Object.fromEntries(unit.spec.env.fromUser.map((c) => [c.name, 'per-user-value'])) };
        generated.push(...renderPlacement({ unit, user }, settings).objects.map((o: KubeObject) => o as unknown as Obj));
      }
    }
    assert.deepEqual([...new Set(generated.map((o) => o.kind))].sort(), ['Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'Secret', 'Service']);
    assertAccepted(dryRun(generated), generated.length);
  });

  test('the check can fail: a pod template that is not restricted-compatible warns, an unknown field is refused', () => {
    const [deployment] = documents(render(fixtureInNamespace(fixtures[0] ?? ''))).filter((o) => o.kind === 'Deployment');
    assert.ok(deployment);
    const pod = (deployment as unknown as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } }).spec.template.spec;
    const container = pod.containers[0] ?? {};
    delete container.securityContext;
    const loose = dryRun([deployment]);
    assert.equal(loose.status, 0, loose.stderr);
    assert.match(loose.stderr, /would violate PodSecurity "restricted:latest"/);
    container.securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesytem: true };
    const typo = dryRun([deployment]);
    assert.notEqual(typo.status, 0);
    assert.match(typo.stderr, /unknown field "spec\.template\.spec\.containers\[0\]\.securityContext\.readOnlyRootFilesytem"/);
  });
});
