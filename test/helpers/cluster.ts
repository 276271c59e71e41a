// A real Kubernetes cluster for tests. Only one named explicitly is used:
// BERTH_TEST_KUBECONFIG (scripts/cluster.sh up prints the path of the one it
// starts; .ci/run sets it). An inherited KUBECONFIG is never read, so a test
// run cannot touch a developer's own cluster by accident. Each test file works
// in a namespace it creates and deletes.
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';

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
