// API writes and time for the Kubernetes backend to converge N servers
// against the loopback fake API server (real SSA, watch and kubelet
// semantics, no scheduling or image pulls: times are berth's and the
// client's own work plus loopback HTTP, not a cluster's):
// from empty, on adopt by a restarted berth, and after one server's change.
// Then the memory of watching pods for --watch servers.
// Run: node bench/kubernetes.ts [--servers 200] [--watch 1000]
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { KubernetesBackend } from '../src/backends/kubernetes/index.ts';
import { resolveKubernetesSettings } from '../src/backends/kubernetes/settings.ts';
import { parseConfig } from '../src/config/load.ts';
import { resolveDesiredState } from '../src/desired/resolve.ts';
import type { Unit } from '../src/desired/types.ts';
import { silentLogger } from '../src/observe/log.ts';
import { FakeKube } from '../test/helpers/fake-kube/server.ts';

const { values } = parseArgs({ options: { servers: { type: 'string', default: '200' }, watch: { type: 'string', default: '1000' } } });
const SERVERS = Number(values.servers);
const WATCHED = Number(values.watch);
const CONCURRENCY = 8;
const DEADLINE_MS = 120_000;

function units(count: number, changed = -1): Unit[] {
  const servers = Array.from({ length: count }, (_, i) => `  s${i}:\n    type: multi-user\n    runtime: npx\n    package: server-${i}@1.0.0\n    replicas: ${i % 4 === 0 ? 2 : 1}\n    env: { MODE: ${i === changed ? 'changed' : 'normal'}, TOKEN: { value: t${i}, sensitive: true } }\n    resources: { cpu: 250m, memory: 128Mi }\n`).join('');
  const result = parseConfig('bench.yaml', `version: 1\nbackend: { type: kubernetes }\nservers:\n${servers}`, { env: {}, readFile: () => '', baseDir: '/' });
  if (!result.ok) throw new Error(JSON.stringify(result.issues.slice(0, 3)));
  return [...resolveDesiredState(result.value).units];
}

/** Ensures every unit with bounded concurrency, as the controller's apply does. */
async function converge(backend: KubernetesBackend, all: readonly Unit[]): Promise<number> {
  const signal = AbortSignal.timeout(DEADLINE_MS);
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < all.length) {
      const unit = all[next++];
      if (unit !== undefined) await backend.ensure({ unit }, signal);
    }
  }));
  return performance.now() - start;
}

async function main(): Promise<void> {
  const fake = new FakeKube();
  await fake.start();
  const config = new k8s.KubeConfig();
  config.loadFromOptions(fake.kubeconfig());
  const settings = resolveKubernetesSettings({ type: 'kubernetes' });
  const backend = (): KubernetesBackend => new KubernetesBackend({ settings, config, logger: silentLogger() });
  const rows: string[][] = [];
  const measure = async (label: string, all: readonly Unit[]): Promise<void> => {
    const before = fake.writes.length;
    const ms = await converge(backend(), all);
    rows.push([label, String(all.length), String(fake.writes.length - before), ms.toFixed(0), (ms / all.length).toFixed(2)]);
  };
  const initial = units(SERVERS);
  await measure('from empty', initial);
  await measure('adopt (restarted berth)', initial);
  await measure('one server changed', units(SERVERS, 7));
  process.stdout.write(`Kubernetes backend against the loopback fake API server, ${SERVERS} servers, ${CONCURRENCY} ensures at a time\n\n`);
  process.stdout.write('| case | servers | API writes | total ms | ms per server |\n|---|---|---|---|---|\n');
  for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);

  // Memory of the pod watch: create WATCHED servers' pods, then watch them all.
  await converge(backend(), units(WATCHED).slice(SERVERS));
  // Settled first: no kubelet churn in the fake (same process) while memory is measured.
  const settled = Date.now() + DEADLINE_MS;
  while (fake.store.list('pods', undefined).some((p) => (p.object.status as { phase?: string } | undefined)?.phase !== 'Running') && Date.now() < settled) await new Promise((r) => setTimeout(r, 50));
  const pods = fake.store.list('pods', undefined).length;
  const watcher = backend();
  const stop = new AbortController();
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let seen = 0;
  let heapAfter = heapBefore;
  for await (const _event of watcher.events(stop.signal)) {
    if (++seen < pods) continue;
    // Measured while the watch (and its cache of pods) is alive.
    globalThis.gc?.();
    heapAfter = process.memoryUsage().heapUsed;
    break;
  }
  stop.abort();
  process.stdout.write(`\nWatching ${pods} pods of ${WATCHED} servers: heap +${((heapAfter - heapBefore) / 2 ** 20).toFixed(1)} MiB${globalThis.gc === undefined ? ' (run with --expose-gc for a steadier figure)' : ''}\n`);
  await fake.close();
}

await main();
