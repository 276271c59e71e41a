import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { BackendError } from '../../src/backends/backend.ts';
import { loadKubeConfig } from '../../src/backends/kubernetes/connect.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'berth-kubeconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'config');
writeFileSync(file, `apiVersion: v1
kind: Config
clusters:
  - { name: one, cluster: { server: "http://127.0.0.1:1" } }
  - { name: two, cluster: { server: "http://127.0.0.1:2" } }
users: [{ name: u, user: { token: t } }]
contexts:
  - { name: first, context: { cluster: one, user: u } }
  - { name: second, context: { cluster: two, user: u } }
current-context: first
`);

test('a kubeconfig file and its current context, or the named one', () => {
  assert.equal(loadKubeConfig({ kubeconfig: file }).getCurrentCluster()?.server, 'http://127.0.0.1:1');
  assert.equal(loadKubeConfig({ kubeconfig: file, context: 'second' }).getCurrentCluster()?.server, 'http://127.0.0.1:2');
  const previous = process.env.KUBECONFIG;
  process.env.KUBECONFIG = file;
  try {
    assert.equal(loadKubeConfig({ context: 'second' }, {}).getCurrentCluster()?.server, 'http://127.0.0.1:2');
  } finally {
    if (previous === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = previous;
  }
});

test('an unknown context or an unreadable file is a clear error', () => {
  assert.throws(() => loadKubeConfig({ kubeconfig: file, context: 'thrid' }), (err: unknown) => err instanceof BackendError && err.code === 'invalid_spec' && err.message === 'the kubeconfig has no context thrid; it has: first, second');
  assert.throws(() => loadKubeConfig({ kubeconfig: path.join(dir, 'missing') }), (err: unknown) => err instanceof BackendError && /^cannot read the kubeconfig .*missing/.test(err.message));
});
