// berth routing over EndpointSlices on the loopback fake API server: the
// pods of a two-replica server are two real MCP servers on their own loopback
// ports, each reporting its name, so where a call lands is observable. A
// session stays on its pod; a pod that leaves the slice ends only its own
// sessions; stateless requests spread; concurrent cold starts of a per-user
// server make one Deployment. The fake kubelet gives pods their addresses;
// test/integration/kubernetes-real.test.ts routes to real pods.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { KubernetesBackend } from '../../src/backends/kubernetes/index.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { parseConfig } from '../../src/config/load.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import type { Unit } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { UpstreamPool } from '../../src/proxy/upstream/pool.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, repoRoot, startTestBerth, status } from '../helpers/berth.ts';
import { FakeKube } from '../helpers/fake-kube/server.ts';
import { waitFor } from '../helpers/wait.ts';

const fixture = path.join(repoRoot, 'test/fixtures/docker/mcp-server.mjs');

const fake = new FakeKube();
const servers: ChildProcess[] = [];
/** The two "pods": a name each, and the port its process bound. */
const pods: { name: string; port: number }[] = [];
/** Pod name → the fixture serving it. */
const served = new Map<string, { name: string; port: number }>();
let b: TestBerth | undefined;

/** A real MCP server on a port it binds itself; resolves once it said which. */
async function startFixture(name: string): Promise<{ name: string; port: number }> {
  const child = spawn(process.execPath, [fixture], { env: { ...process.env, HOST: '127.0.0.1', PORT: '0', NAME: name }, stdio: ['ignore', 'ignore', 'pipe'] });
  servers.push(child);
  let text = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const port = await waitFor(() => /listening on 127\.0\.0\.1:(\d+)/.exec(text)?.[1], { timeoutMs: 20_000, message: `${name} listening` });
  return { name, port: Number(port) };
}

/** The fixture a new pod of `deployment` is served by: the first one no live pod of it uses. */
function assign(deployment: string, pod: string): number | undefined {
  if (!deployment.startsWith('berth-pinned') && !deployment.startsWith('berth-cold')) return undefined;
  const live = [...served].filter(([name]) => name.startsWith(deployment) && fake.store.get('pods', 'default', name) !== undefined).map(([, p]) => p.name);
  const free = pods.find((p) => !live.includes(p.name)) ?? pods[0];
  if (free === undefined) return undefined;
  served.set(pod, free);
  return free.port;
}

before(async () => {
  await fake.start();
  pods.push(...(await Promise.all([startFixture('pod-a'), startFixture('pod-b')])));
  fake.kubelet.portOf = ({ deployment, name }) => assign(deployment, name);
});

after(async () => {
  await b?.stop();
  await fake.close();
  for (const child of servers) child.kill();
});

function fakeConfig(): k8s.KubeConfig {
  const config = new k8s.KubeConfig();
  config.loadFromOptions(fake.kubeconfig());
  return config;
}

async function whoami(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as { content: { text: string }[] };
  return (JSON.parse(result.content[0]?.text ?? '{}') as { name: string }).name;
}

/** One 2026-07-28 request, no session: where it lands. */
async function statelessWhoami(url: string): Promise<string> {
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
  const res = await fetch(`${url}/mcp/pinned`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'whoami' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {}, _meta: meta } }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const json = res.headers.get('content-type')?.includes('text/event-stream') ? (/^data: (.*)$/m.exec(text)?.[1] ?? '') : text;
  const body = JSON.parse(json) as { result: { content: { text: string }[] } };
  return (JSON.parse(body.result.content[0]?.text ?? '{}') as { name: string }).name;
}

describe('routing over EndpointSlices', () => {
  const clients: { client: Client; pod: string }[] = [];

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-routing-'));
    const kubeconfig = path.join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, fakeConfig().exportConfig());
    after(() => rmSync(dir, { recursive: true, force: true }));
    b = await startTestBerth(
      '  pinned:\n    type: multi-user\n    runtime: container\n    image: example.com/whoami:1\n    port: 8080\n    replicas: 2\n',
      `backend: { type: kubernetes, namespace: default, kubeconfig: ${JSON.stringify(kubeconfig)} }\n`,
    );
    await waitFor(async () => (await status(b?.url ?? '')).servers.find((s) => s.name === 'pinned')?.instances.filter((i) => i.state === 'ready').length === 2, { timeoutMs: 20_000, message: 'both pods ready in berth' });
  });

  after(async () => {
    for (const { client } of clients) await client.close().catch(() => undefined);
  });

  test('sessions spread over both pods, and every call of a session lands on its pod', async () => {
    for (let i = 0; i < 4; i++) {
      const client = await connectClient(b?.url ?? '', 'pinned');
      clients.push({ client, pod: await whoami(client) });
    }
    for (let round = 0; round < 3; round++) {
      for (const { client, pod } of clients) assert.equal(await whoami(client), pod, 'a session stays on its pod');
    }
    const perPod = new Map<string, number>();
    for (const { pod } of clients) perPod.set(pod, (perPod.get(pod) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(perPod), { 'pod-a': 2, 'pod-b': 2 }, 'least sessions first');
  });

  test('stateless (2026-07-28) requests balance over both pods', async () => {
    const landed = new Set<string>();
    for (let i = 0; i < 6; i++) landed.add(await statelessWhoami(b?.url ?? ''));
    assert.deepEqual([...landed].sort(), ['pod-a', 'pod-b']);
  });

  test('a pod that leaves the slice ends only its own sessions: they get 404 and initialize again', async () => {
    const [podName] = [...served].find(([name, p]) => name.startsWith('berth-pinned') && p.name === 'pod-a' && fake.store.get('pods', 'default', name) !== undefined) ?? [];
    assert.ok(podName !== undefined, 'the pod served by pod-a');
    await k8s.KubernetesObjectApi.makeApiClient(fakeConfig()).delete({ apiVersion: 'v1', kind: 'Pod', metadata: { name: podName, namespace: 'default' } });
    const [lost, kept] = [clients.filter((c) => c.pod === 'pod-a'), clients.filter((c) => c.pod === 'pod-b')];
    for (const { client } of lost) {
      const err = await waitFor(() => whoami(client).then(() => undefined, (e: unknown) => e as Error), { timeoutMs: 10_000, message: 'the session of the removed pod ended' });
      assert.match(err.message, /404|Session not found/);
    }
    for (const { client } of kept) assert.equal(await whoami(client), 'pod-b', 'the other pod\'s sessions are untouched');
    // Initializing again lands on a ready pod: pod-b, or the Deployment's replacement.
    const again = await connectClient(b?.url ?? '', 'pinned');
    clients.push({ client: again, pod: await whoami(again) });
    assert.match(clients.at(-1)?.pod ?? '', /^pod-[ab]$/);
  });

  test('a rollout (a new spec) hands the sessions of the old pods to the new ones: no 404', async () => {
    const old = fake.store.list('pods', 'default').map((p) => String((p.object.metadata as { name: string }).name)).filter((n) => n.startsWith('berth-pinned'));
    const live = clients.filter((c) => c.pod !== 'pod-a');
    // As in a cluster, new pods take a while to become ready: berth has published the new spec by then.
    const step = fake.kubelet.stepMs;
    fake.kubelet.stepMs = 300;
    after(() => (fake.kubelet.stepMs = step));
    b?.writeConfig('  pinned:\n    type: multi-user\n    runtime: container\n    image: example.com/whoami:1\n    port: 8080\n    replicas: 2\n    env: { MODE: two }\n');
    await waitFor(async () => {
      const now = fake.store.list('pods', 'default').map((p) => String((p.object.metadata as { name: string }).name)).filter((n) => n.startsWith('berth-pinned'));
      const ready = (await status(b?.url ?? '')).servers.find((s) => s.name === 'pinned')?.instances.filter((i) => i.state === 'ready') ?? [];
      return now.every((n) => !old.includes(n)) && ready.length === 2 && ready.every((i) => !old.includes(i.id));
    }, { timeoutMs: 20_000, message: 'the new pods serve, the old are gone' });
    assert.equal(fake.kubelet.rolloutsOf('berth-pinned'), 1);
    for (const { client } of live) assert.match(await whoami(client), /^pod-[ab]$/, 'the session lives on, on a new pod');
  });
});

describe('scale from zero', () => {
  test('concurrent first calls of a per-user server make one Deployment, and all get the one instance', async () => {
    const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes', namespace: 'default' }, 'berth'), config: fakeConfig(), logger: silentLogger() });
    const pool = new UpstreamPool({ backend, logger: silentLogger() });
    const step = fake.kubelet.stepMs;
    try {
      const parsed = parseConfig('berth.yaml', `version: 1\nbackend: { type: kubernetes }\nauth: [{ type: apiKey, keys: [{ user: alice, sha256: "${'a'.repeat(64)}" }] }]\nservers:\n  cold:\n    type: single-user\n    runtime: container\n    image: example.com/whoami:1\n    port: 8080\n`, { env: {}, readFile: () => '', baseDir: '/' });
      assert.ok(parsed.ok);
      const unit = resolveDesiredState(parsed.value).units[0] as Unit;
      pool.publish(unit, []);
      // As in a cluster, the pod is not ready when the Deployment is accepted: the start must wait for it.
      fake.kubelet.stepMs = 500;
      const before = fake.writesOf('Deployment').length;
      const signal = AbortSignal.timeout(30_000);
      const muxes = await Promise.all(Array.from({ length: 8 }, () => pool.acquire('cold', 'alice', signal)));
      assert.equal(new Set(muxes).size, 1, 'one instance for all');
      const writes = fake.writesOf('Deployment').slice(before);
      assert.deepEqual(writes.map((w) => `${w.method} ${w.name.replace(/-[0-9a-f]{10}$/, '-<user>')}`), ['APPLY berth-cold-<user>'], 'exactly one Deployment write');
      assert.ok((await muxes[0]?.ready(signal))?.serverInfo !== undefined, 'the instance answered initialize');
    } finally {
      fake.kubelet.stepMs = step;
      await pool.close();
      await backend.close();
    }
  });

  test('a per-user start whose pods the cluster refuses (a pods quota) fails at once with insufficient capacity, not at its deadline', async () => {
    const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes', namespace: 'default' }, 'berth'), config: fakeConfig(), logger: silentLogger() });
    const pool = new UpstreamPool({ backend, logger: silentLogger() });
    const quota = fake.kubelet.podQuota;
    try {
      const parsed = parseConfig('berth.yaml', `version: 1\nbackend: { type: kubernetes }\nauth: [{ type: apiKey, keys: [{ user: carol, sha256: "${'c'.repeat(64)}" }] }]\nservers:\n  refused:\n    type: single-user\n    runtime: container\n    image: example.com/whoami:1\n    port: 8080\n    startupTimeout: 5m\n`, { env: {}, readFile: () => '', baseDir: '/' });
      assert.ok(parsed.ok);
      const unit = resolveDesiredState(parsed.value).units[0] as Unit;
      pool.publish(unit, []);
      fake.kubelet.podQuota = fake.store.count('pods');
      // Well before the 5-minute startup timeout: the Deployment's refusal reaches the waiting start.
      await assert.rejects(pool.acquire('refused', 'carol', AbortSignal.timeout(20_000)), (err: Error) => /insufficient-capacity/.test(err.message));
    } finally {
      fake.kubelet.podQuota = quota;
      await pool.close();
      await backend.close();
    }
  });
});
