// The backend contract suite on the Kubernetes backend against a real control
// plane (scripts/cluster.sh: kube-apiserver, controllers, scheduler and a
// kubelet on containerd), pods running berth.test/everything:local. Skipped
// without BERTH_TEST_KUBECONFIG, failing instead in CI.
import { after, before } from 'node:test';
import { KubernetesBackend } from '../../src/backends/kubernetes/index.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import type { Unit, UnitSpec } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { backendContract } from '../helpers/backend-contract.ts';
import type { UnitKind } from '../helpers/backend-contract.ts';
import { EVERYTHING_IMAGE, realClusterOrSkip, testNamespace } from '../helpers/cluster.ts';

const real = realClusterOrSkip();
let namespace = { name: '', remove: async (): Promise<void> => undefined };

before(async () => {
  if ('cluster' in real) namespace = await testNamespace(real.cluster.config);
});
after(async () => {
  await namespace.remove();
});

// No image is ever pulled: the node has berth.test/everything:local, an
// upper-case name is refused before any pull, and port 99999 makes node exit.
const images: Record<UnitKind, { image: string; env: Record<string, string> }> = {
  ok: { image: EVERYTHING_IMAGE, env: {} },
  'ok-v2': { image: EVERYTHING_IMAGE, env: { VERSION: '2' } },
  failing: { image: 'berth.test/Failing:1', env: {} },
  crashing: { image: EVERYTHING_IMAGE, env: { PORT: '99999' } },
};

function makeUnit(name: string, kind: UnitKind): Unit {
  const { image, env } = images[kind];
  const spec: UnitSpec = { runtime: 'container', image, port: 3001, path: '/mcp', transport: 'streamable-http', args: [], env: { values: env, sensitive: [], fromUser: [] } };
  return { name, scope: 'shared', spec, specHash: hashSpec({ backend: 'kubernetes', scope: 'shared', spec }), replicas: 1, startupTimeoutMs: 60_000 };
}

backendContract(
  'kubernetes (real control plane and kubelet)',
  (owner) => {
    if (!('cluster' in real)) throw new Error(real.skip);
    const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes', namespace: namespace.name }, owner), config: real.cluster.config, logger: silentLogger() });
    return { backend, writes: () => backend.apiWrites };
  },
  makeUnit,
  {
    ...('skip' in real ? { skip: real.skip } : {}),
    readyTimeoutMs: 60_000,
    known: {
      'replicas and users: one instance per replica, one per user, each with its own id':
        'scaling down is asynchronous on a real cluster: the ReplicaSet controller deletes the surplus pod after ensure returns, and the pod is listed as stopping through its grace period',
      'replace: a new specHash starts beside the old one; removing the old leaves the new':
        'a new spec rolls the Deployment in place: Kubernetes keeps old pods until new ones are ready, then removes them (docs/kubernetes.md)',
      'a start that cannot happen: a retryable BackendError, and the instance listed with a failure class':
        'ensure returns once the API accepted the objects; an invalid image shows later, on the pod (failure image-missing), not as a rejection',
    },
  },
);
