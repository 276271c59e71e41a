// API writes and time for the Kubernetes backend to converge N servers, from
// empty, on adopt by a restarted berth, and after one server's change; then
// the memory of watching pods for --watch servers.
//
// Two API servers:
// - the loopback fake (default): real SSA, watch and kubelet semantics, no
//   scheduling or image pulls: berth's and the client's own work plus loopback HTTP;
// - the real one named by BERTH_TEST_KUBECONFIG (scripts/cluster.sh), in a
//   namespace of its own, deleted at the end. Its controllers make the
//   servers' ReplicaSets and pods; the pods ask for a node label no node has,
//   so they stay Pending: nothing is pulled or run, and the one node stays free
//   for the tests sharing the cluster. The watched pods are made by the bench
//   from berth's own pod templates, for a scheduler that does not exist, so
//   1,000 servers' pods cost the shared controllers and scheduler nothing.
// Run: node --expose-gc bench/kubernetes.ts [--servers 200] [--watch 1000] [--api fake|real]
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { KubernetesBackend } from '../src/backends/kubernetes/index.ts';
import { renderPlacement } from '../src/backends/kubernetes/objects.ts';
import type { KubernetesSettings } from '../src/backends/kubernetes/settings.ts';
import { resolveKubernetesSettings } from '../src/backends/kubernetes/settings.ts';
import { parseConfig } from '../src/config/load.ts';
import { resolveDesiredState } from '../src/desired/resolve.ts';
import type { Unit } from '../src/desired/types.ts';
import { silentLogger } from '../src/observe/log.ts';
import { CLUSTER_ENV, testNamespace } from '../test/helpers/cluster.ts';
import { FakeKube } from '../test/helpers/fake-kube/server.ts';

const { values } = parseArgs({ options: { servers: { type: 'string', default: '200' }, watch: { type: 'string', default: '1000' }, api: { type: 'string' } } });
const SERVERS = Number(values.servers);
const WATCHED = Number(values.watch);
const REAL = (values.api ?? (process.env[CLUSTER_ENV] ? 'real' : 'fake')) === 'real';
const CONCURRENCY = 8;
const DEADLINE_MS = REAL ? 900_000 : 120_000;
/** The everything image is on the test node already; the pods never get that far. */
const IMAGE = 'berth.test/everything:local';

/** N servers as berth resolves them; every fourth has two replicas (a PodDisruptionBudget), each a sensitive value (a Secret). */
function units(namespace: string, count: number, changed = -1): { units: Unit[]; settings: KubernetesSettings } {
  const servers = Array.from({ length: count }, (_, i) => `  s${i}:\n    type: multi-user\n    runtime: container\n    image: ${IMAGE}\n    port: 3001\n    replicas: ${i % 4 === 0 ? 2 : 1}\n    env: { MODE: ${i === changed ? 'changed' : 'normal'}, TOKEN: { value: t${i}, sensitive: true } }\n    resources: { cpu: 250m, memory: 128Mi }\n`).join('');
  const backend = `{ type: kubernetes, namespace: ${namespace}, pods: { nodeSelector: { berth.dev/bench: unschedulable } } }`;
  const result = parseConfig('bench.yaml', `version: 1\nbackend: ${backend}\nservers:\n${servers}`, { env: {}, readFile: () => '', baseDir: '/' });
  if (!result.ok) throw new Error(JSON.stringify(result.issues.slice(0, 3)));
  return { units: [...resolveDesiredState(result.value).units], settings: resolveKubernetesSettings(result.value.config.backend) };
}

/** Runs `work` on every item with bounded concurrency, within the deadline. */
async function each<T>(items: readonly T[], work: (item: T, signal: AbortSignal) => Promise<unknown>): Promise<number> {
  const signal = AbortSignal.timeout(DEADLINE_MS);
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < items.length) {
      signal.throwIfAborted();
      const item = items[next++];
      if (item !== undefined) await work(item, signal);
    }
  }));
  return performance.now() - start;
}

interface Api {
  readonly config: k8s.KubeConfig;
  readonly namespace: string;
  readonly label: string;
  /** Makes the pods of `all` as a Deployment's controllers would, settled before the watch starts. */
  readonly makePods: (all: readonly Unit[], settings: KubernetesSettings) => Promise<void>;
  readonly close: () => Promise<void>;
}

async function fakeApi(): Promise<Api> {
  const fake = new FakeKube();
  await fake.start();
  const config = new k8s.KubeConfig();
  config.loadFromOptions(fake.kubeconfig());
  return {
    config,
    namespace: 'berth',
    label: 'the loopback fake API server',
    makePods: async (all, settings) => {
      const backend = new KubernetesBackend({ settings, config, logger: silentLogger() });
      await each(all, (unit, signal) => backend.ensure({ unit }, signal));
      // Settled first: no kubelet churn in the fake (same process) while memory is measured.
      const settled = Date.now() + DEADLINE_MS;
      while (fake.store.list('pods', undefined).some((p) => (p.object.status as { phase?: string } | undefined)?.phase !== 'Running') && Date.now() < settled) await new Promise((r) => setTimeout(r, 50));
    },
    close: () => fake.close(),
  };
}

async function realApi(): Promise<Api> {
  const config = new k8s.KubeConfig();
  config.loadFromFile(process.env[CLUSTER_ENV] ?? '');
  const version = await config.makeApiClient(k8s.VersionApi).getCode();
  const { name: namespace, remove } = await testNamespace(config, 'berth-bench');
  const core = config.makeApiClient(k8s.CoreV1Api);
  return {
    config,
    namespace,
    label: `the real API server (Kubernetes ${version.gitVersion}, scripts/cluster.sh)`,
    makePods: async (all, settings) => {
      // Pods need the namespace's default ServiceAccount, made by a controller shortly after the namespace.
      const deadline = Date.now() + 60_000;
      while (!(await core.readNamespacedServiceAccount({ name: 'default', namespace }).then(() => true, () => false))) {
        if (Date.now() > deadline) throw new Error('no default ServiceAccount in the bench namespace');
        await new Promise((r) => setTimeout(r, 250));
      }
      const pods = all.flatMap((unit) => {
        const deployment = renderPlacement({ unit }, settings).objects.find((o) => o.kind === 'Deployment') as unknown as { metadata: { name: string }; spec: { template: { metadata: k8s.V1ObjectMeta; spec: k8s.V1PodSpec } } };
        const { template } = deployment.spec;
        return Array.from({ length: unit.replicas }, (_, r): k8s.V1Pod => ({
          metadata: { ...template.metadata, name: `${deployment.metadata.name}-${r}` },
          // No scheduler has this name: the pods stay Pending, touched by nothing but the bench.
          spec: { ...template.spec, schedulerName: 'berth-bench-unscheduled' },
        }));
      });
      await each(pods, (body, signal) => {
        signal.throwIfAborted();
        return core.createNamespacedPod({ namespace, body });
      });
    },
    close: remove,
  };
}

async function main(): Promise<void> {
  const api = REAL ? await realApi() : await fakeApi();
  try {
    const backend = (settings: KubernetesSettings): KubernetesBackend => new KubernetesBackend({ settings, config: api.config, logger: silentLogger() });
    const rows: string[][] = [];
    const measure = async (label: string, set: { units: Unit[]; settings: KubernetesSettings }): Promise<void> => {
      const fresh = backend(set.settings);
      const ms = await each(set.units, (unit, signal) => fresh.ensure({ unit }, signal));
      rows.push([label, String(set.units.length), String(fresh.apiWrites), ms.toFixed(0), (ms / set.units.length).toFixed(2)]);
    };
    const initial = units(api.namespace, SERVERS);
    await measure('from empty', initial);
    await measure('adopt (restarted berth)', initial);
    await measure('one server changed', units(api.namespace, SERVERS, 7));
    process.stdout.write(`Kubernetes backend against ${api.label}, ${SERVERS} servers, ${CONCURRENCY} ensures at a time\n\n`);
    process.stdout.write('| case | servers | API writes | total ms | ms per server |\n|---|---|---|---|---|\n');
    for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);

    // Memory of the pod watch: WATCHED servers' pods, under an owner of their own, then watched.
    const watched = units(api.namespace, WATCHED);
    const settings = resolveKubernetesSettings({ type: 'kubernetes', namespace: api.namespace, pods: watched.settings.pods }, 'watch');
    await api.makePods(watched.units, settings);
    const pods = watched.units.reduce((n, u) => n + u.replicas, 0);
    const watcher = backend(settings);
    const stop = new AbortController();
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    let seen = 0;
    let heapAfter = heapBefore;
    const watchStart = performance.now();
    for await (const _event of watcher.events(AbortSignal.any([stop.signal, AbortSignal.timeout(DEADLINE_MS)]))) {
      if (++seen < pods) continue;
      // Measured while the watch (and its cache of pods) is alive.
      globalThis.gc?.();
      heapAfter = process.memoryUsage().heapUsed;
      break;
    }
    const listMs = performance.now() - watchStart;
    stop.abort();
    if (seen < pods) throw new Error(`the watch saw ${seen} of ${pods} pods`);
    process.stdout.write(`\nWatching ${pods} pods of ${WATCHED} servers: heap +${((heapAfter - heapBefore) / 2 ** 20).toFixed(1)} MiB, every pod seen in ${listMs.toFixed(0)} ms${globalThis.gc === undefined ? ' (run with --expose-gc for a steadier figure)' : ''}\n`);
  } finally {
    await api.close();
  }
}

await main();
