// `berth render` as users run it: a real process, its YAML parsed and every
// document checked against the official API models.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { checkKubeObject } from '../helpers/kube-models.ts';

const BIN = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'berth-render-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function render(args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BIN, 'render', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', SEARCH_KEY: 's3cret-value' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const file = path.join(dir, 'berth.yaml');
writeFileSync(
  file,
  `version: 1
backend: { type: kubernetes, namespace: mcp, pods: { egress: [0.0.0.0/0] } }
servers:
  search:
    type: multi-user
    runtime: container
    image: registry.example.com/search:2
    port: 8000
    replicas: 3
    resources: { cpu: 0.5, memory: 1024Mi }
    env:
      SEARCH_KEY: { value: "\${env:SEARCH_KEY}", sensitive: true }
      REGION: eu
  fetch:
    type: multi-user
    runtime: uvx
    package: mcp-server-fetch
`,
);

test('renders valid objects for every hosted server, secrets left out', async () => {
  const result = render([file]);
  assert.equal(result.code, 0, result.stderr);
  const objects = parseAllDocuments(result.stdout).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string } } | null).filter((o) => o !== null);
  assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`), [
    'NetworkPolicy/berth-fetch', 'Service/berth-fetch', 'Deployment/berth-fetch',
    'NetworkPolicy/berth-search', 'Service/berth-search', 'Deployment/berth-search', 'PodDisruptionBudget/berth-search',
  ]);
  for (const object of objects) assert.deepEqual(await checkKubeObject(object), []);
  assert.match(result.stdout, /# Secret berth-search omitted \(keys: SEARCH_KEY\)/);
  assert.doesNotMatch(result.stdout, /s3cret-value|czNjcmV0LXZhbHVl/);
  // Quantities come out as the API server stores them, so a re-read compares equal.
  assert.match(result.stdout, /cpu: 500m\n\s+memory: 1Gi/);
});

test('--secrets include prints the Secret', async () => {
  const result = render([file, '--secrets', 'include']);
  assert.equal(result.code, 0, result.stderr);
  const secret = parseAllDocuments(result.stdout).map((d) => d.toJS() as { kind?: string; data?: Record<string, string> } | null).find((o) => o?.kind === 'Secret');
  assert.equal(Buffer.from(secret?.data?.SEARCH_KEY ?? '', 'base64').toString(), 's3cret-value');
  assert.deepEqual(await checkKubeObject(secret as { apiVersion: string; kind: string }), []);
});

test('bad input is a clear message, never a stack trace', () => {
  const owner = render([file, '--owner', 'Prod_1']);
  assert.equal(owner.code, 1);
  assert.match(owner.stderr, /^berth: owner "Prod_1" must be 1-20 lowercase letters/);
  const broken = path.join(dir, 'broken.yaml');
  writeFileSync(broken, 'version: 1\nbackend: { type: kubernetes, maxResources: { cpu: 1 } }\nservers:\n  big: { type: multi-user, runtime: npx, package: x, resources: { cpu: 2 } }\n');
  const over = render([broken]);
  assert.equal(over.code, 1);
  assert.match(over.stderr, /broken\.yaml:4:\d+ servers\.big\.resources\.cpu: cpu 2 is more than backend\.maxResources\.cpu \(1\)/);
  assert.equal(over.stdout, '', 'no objects for a config over the maximums');
  assert.doesNotMatch(owner.stderr + over.stderr, /^\s+at /m);
});
