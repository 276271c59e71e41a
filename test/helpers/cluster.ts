// A real Kubernetes cluster for tests. Only one named explicitly is used:
// BERTH_TEST_KUBECONFIG (scripts/cluster.sh up prints the path of the one it
// starts; .ci/run sets it). An inherited KUBECONFIG is never read, so a test
// run cannot touch a developer's own cluster by accident. Each test file works
// in a namespace it creates and deletes.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { repoRoot } from './berth.ts';
import { waitFor } from './wait.ts';

export const CLUSTER_ENV = 'BERTH_TEST_KUBECONFIG';
/** server-everything on streamable HTTP, port 3001, path /mcp: scripts/cluster.sh puts it in the node's containerd. */
export const EVERYTHING_IMAGE = 'berth.test/everything:local';

export interface RealCluster {
  readonly config: k8s.KubeConfig;
}

/**
 * The real cluster, or why there is none (for `skip`). In CI a missing
 * cluster throws: the real-cluster runs must fail there, never skip.
 */
export function realClusterOrSkip(): { cluster: RealCluster } | { skip: string } {
  const file = process.env[CLUSTER_ENV];
  if (file === undefined || file === '') {
    const reason = `no real cluster: set ${CLUSTER_ENV} (npm run cluster:up prints one)`;
    if (process.env.CI === 'true') throw new Error(`${reason}; CI must run against one`);
    return { skip: reason };
  }
  const config = new k8s.KubeConfig();
  config.loadFromFile(file);
  return { cluster: { config } };
}

/** A fresh namespace (Pod Security `restricted`, as berth's namespace should be); deleted by the returned function. */
export async function testNamespace(config: k8s.KubeConfig, prefix = 'berth-test'): Promise<{ name: string; remove: () => Promise<void> }> {
  const core = config.makeApiClient(k8s.CoreV1Api);
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
  return {
    name,
    remove: async () => {
      await core.deleteNamespace({ name }).catch(() => undefined);
    },
  };
}

/**
 * A second kube-apiserver of the running cluster (`scripts/cluster.sh
 * apiserver PORT`: the same etcd, certificates and flags) that a test stops
 * and starts again: an API server restart seen by whatever talks to it, and
 * by no other test or helper sharing the cluster. Needs a cluster that
 * scripts/cluster.sh started: its state folder holds the kubeconfig.
 */
export class SecondApiServer {
  readonly config: k8s.KubeConfig;
  readonly #port: number;
  readonly #stateDir: string;
  #child: ChildProcess | undefined;
  #log = '';

  constructor(cluster: RealCluster, port: number) {
    this.#port = port;
    this.#stateDir = path.dirname(process.env[CLUSTER_ENV] ?? '');
    const exported = JSON.parse(cluster.config.exportConfig()) as { clusters: { cluster: { server: string } }[] };
    for (const c of exported.clusters) c.cluster.server = `https://127.0.0.1:${port}`;
    this.config = new k8s.KubeConfig();
    this.config.loadFromString(JSON.stringify(exported));
  }

  /** Starts it and waits until it answers; throws with its log's end when it exits or does not answer within a minute. */
  async start(): Promise<void> {
    const child = spawn('bash', [path.join(repoRoot, 'scripts/cluster.sh'), 'apiserver', String(this.#port)], { env: { ...process.env, BERTH_CLUSTER_DIR: this.#stateDir }, stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#log = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.#log = (this.#log + chunk).slice(-4000)));
    const core = this.config.makeApiClient(k8s.CoreV1Api);
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`the second API server exited (${child.exitCode}): ${this.#log}`);
      return core.listNamespace({ limit: 1 }).then(() => true, () => false);
    }, { timeoutMs: 60_000, intervalMs: 250, message: `the second API server answering on port ${this.#port}` });
  }

  /** Stops it as a restart does (SIGTERM: it closes its watches) and waits until it is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}
