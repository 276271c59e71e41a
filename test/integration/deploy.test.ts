// deploy/: the manifests that run berth itself in a cluster, checked against
// the official API models, against the permissions berth asks for, and
// against berth's own config validation.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { REQUIRED_ACCESS } from '../../src/backends/kubernetes/index.ts';
import { parseConfig } from '../../src/config/load.ts';
import { repoRoot } from '../helpers/berth.ts';
import { checkKubeObject } from '../helpers/kube-models.ts';

const base = path.join(repoRoot, 'deploy/kubernetes');
const chart = path.join(repoRoot, 'deploy/helm/berth');
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };

function documents(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Obj | null).filter((o): o is Obj => o !== null);
}

function baseObjects(): Obj[] {
  const kustomization = parse(readFileSync(path.join(base, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  return kustomization.resources.flatMap((file) => documents(readFileSync(path.join(base, file), 'utf8')));
}

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

test('every object of the kustomize base passes the official API models', async () => {
  const objects = baseObjects();
  assert.deepEqual(objects.map((o) => o.kind).sort(), ['ConfigMap', 'Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
  for (const object of objects) assert.deepEqual(await checkKubeObject(object), [], `${object.kind}/${object.metadata.name}`);
});

test('`kubectl kustomize` builds the base into valid objects in namespace berth', { skip: kubectl ? false : 'kubectl is not installed' }, async () => {
  const built = spawnSync('kubectl', ['kustomize', base], { encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  const objects = documents(built.stdout);
  assert.equal(objects.length, 6);
  for (const object of objects) {
    assert.equal(object.metadata.namespace, 'berth');
    assert.deepEqual(await checkKubeObject(object), []);
  }
});

function roleRules(objects: readonly Obj[]): string[] {
  const role = objects.find((o) => o.kind === 'Role') as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] } | undefined;
  assert.ok(role);
  return role.rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))).sort();
}
const required = REQUIRED_ACCESS.flatMap((a) => a.verbs.map((v) => `${a.group}/${a.resource}:${v}`)).sort();

test('the Role grants exactly what berth checks for at start-up: nothing more, nothing less', () => {
  assert.deepEqual(roleRules(baseObjects()), required);
});

test('the ConfigMap holds a valid berth.yaml for the namespace, and berth\'s pods carry the label server pods admit', () => {
  const objects = baseObjects();
  const text = (objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: { 'berth.yaml': string } }).data['berth.yaml'];
  const result = parseConfig('berth.yaml', text, { env: {}, readFile: () => '', baseDir: '/' });
  assert.ok(result.ok, JSON.stringify(result.ok ? [] : result.issues));
  const kustomization = parse(readFileSync(path.join(base, 'kustomization.yaml'), 'utf8')) as { namespace: string };
  assert.equal(result.value.config.backend?.namespace, kustomization.namespace);
  const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } };
  assert.equal(deployment.spec.template.metadata.labels['app.kubernetes.io/name'], 'berth');
});

// Without a cluster or helm: the chart's own files parse, its default config
// validates, and the templates without Helm functions equal the kustomize base
// once `.Release.Namespace` is filled. A real `helm template` renders it, and the
// API server validates it, in kubernetes-server-validation.test.ts.
test('Helm chart: metadata, default config, and templates that mirror the base', async () => {
  const meta = parse(readFileSync(path.join(chart, 'Chart.yaml'), 'utf8')) as { apiVersion: string; name: string };
  assert.equal(meta.apiVersion, 'v2');
  assert.equal(meta.name, 'berth');
  const values = parse(readFileSync(path.join(chart, 'values.yaml'), 'utf8')) as { config: string };
  assert.ok(parseConfig('values.yaml', values.config, { env: {}, readFile: () => '', baseDir: '/' }).ok);
  const templates = readdirSync(path.join(chart, 'templates')).sort();
  assert.deepEqual(templates, ['configmap.yaml', 'deployment.yaml', 'rbac.yaml', 'service.yaml', 'serviceaccount.yaml']);
  const plain = (name: string): Obj[] => documents(readFileSync(path.join(chart, 'templates', name), 'utf8').replaceAll('{{ .Release.Namespace }}', 'berth'));
  assert.deepEqual(roleRules(plain('rbac.yaml')), required);
  for (const name of ['rbac.yaml', 'service.yaml', 'serviceaccount.yaml']) {
    for (const object of plain(name)) assert.deepEqual(await checkKubeObject(object), [], `${name}: ${object.kind}`);
  }
});
