// The backend contract suite on the Kubernetes backend against a real control
// plane (scripts/cluster.sh: kube-apiserver, controllers, scheduler and a
// kubelet on containerd), pods running berth.test/everything:local. Skipped
// without BERTH_TEST_KUBECONFIG, failing instead in CI. Only the container
// combinations run here: the others need berth's bridge image and a package
// registry inside the pod; the fake API server's run covers them.
import { after, before } from 'node:test';
import { KubernetesBackend } from '../../src/backends/kubernetes/index.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import type { Unit, UnitSpec } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { backendContract } from '../helpers/backend-contract.ts';
import type { Capabilities, UnitKind } from '../helpers/backend-contract.ts';
import { KUBERNETES_BEHAVIOUR } from '../helpers/kube-units.ts';
import { EVERYTHING_IMAGE, realClusterOrSkip, testNamespace } from '../helpers/cluster.ts';

const real = realClusterOrSkip();
let namespace = { name: '', remove: async (): Promise<void> => undefined };

before(async () => {
  if ('cluster' in real) namespace = await testNamespace(real.cluster.config);
});
after(async () => {
  await namespace.remove();
});

const env = (values: Record<string, string> = {}): UnitSpec['env'] => ({ values, sensitive: [], fromUser: [] });

function unitOf(name: string, spec: UnitSpec): Unit {
  return { name, scope: 'shared', spec, specHash: hashSpec({ backend: 'kubernetes', scope: 'shared', spec }), replicas: 1, startupTimeoutMs: 60_000 };
}

// No image is ever pulled: the node holds berth.test/everything:local, an
// upper-case name is refused before any pull, and port 99999 makes node exit.
function makeUnit(name: string, kind: UnitKind): Unit {
  const image = kind === 'failing' ? 'berth.test/Failing:1' : EVERYTHING_IMAGE;
  const values: Record<string, string> = kind === 'ok-v2' ? { VERSION: '2' } : kind === 'crashing' ? { PORT: '99999' } : {};
  return unitOf(name, { runtime: 'container', image, port: 3001, path: '/mcp', transport: 'streamable-http', args: [], env: env(values) });
}

const notHere = { refused: 'invalid_spec' } as const;
const capabilities: Capabilities = {
  ...KUBERNETES_BEHAVIOUR,
  runtimes: {
    'npx stdio': notHere,
    'uvx stdio': notHere,
    'command stdio': notHere,
    'command streamable-http': notHere,
    'command sse': notHere,
    'container streamable-http': (name) => unitOf(name, { runtime: 'container', image: EVERYTHING_IMAGE, port: 3001, path: '/mcp', transport: 'streamable-http', args: [], env: env() }),
    'container sse': (name) => unitOf(name, { runtime: 'container', image: EVERYTHING_IMAGE, port: 3001, path: '/sse', transport: 'sse', args: ['sse'], env: env() }),
  },
};

backendContract(
  'kubernetes (real control plane and kubelet)',
  (owner) => {
    if (!('cluster' in real)) throw new Error(real.skip);
    const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes', namespace: namespace.name }, owner), config: real.cluster.config, logger: silentLogger() });
    return { backend, writes: () => backend.apiWrites };
  },
  makeUnit,
  {
    capabilities,
    combinations: ['container streamable-http', 'container sse'],
    ...('skip' in real ? { skip: real.skip } : {}),
    readyTimeoutMs: 60_000,
    caseTimeoutMs: 240_000,
  },
);
