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
  // KUBECONFIG from the environment berth is given, never this process's own.
  assert.equal(loadKubeConfig({ context: 'second' }, { KUBECONFIG: file }).getCurrentCluster()?.server, 'http://127.0.0.1:2');
  // Several files, merged: a context of the second is found.
  const extra = path.join(dir, 'extra');
  writeFileSync(extra, 'apiVersion: v1\nkind: Config\nclusters: [{ name: three, cluster: { server: "http://127.0.0.1:3" } }]\nusers: [{ name: v, user: { token: t } }]\ncontexts: [{ name: third, context: { cluster: three, user: v } }]\ncurrent-context: third\n');
  const both = { KUBECONFIG: `${file}${path.delimiter}${extra}` };
  assert.equal(loadKubeConfig({ context: 'third' }, both).getCurrentCluster()?.server, 'http://127.0.0.1:3');
});

test('an unknown context or an unreadable file is a clear error', () => {
  assert.throws(() => loadKubeConfig({ kubeconfig: file, context: 'thrid' }), (err: unknown) => err instanceof BackendError && err.code === 'invalid_spec' && err.message === 'the kubeconfig has no context thrid; it has: first, second');
  assert.throws(() => loadKubeConfig({ kubeconfig: path.join(dir, 'missing') }), (err: unknown) => err instanceof BackendError && /^cannot read the kubeconfig .*missing/.test(err.message));
});
