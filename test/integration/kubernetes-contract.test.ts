// The backend contract suite on the Kubernetes backend, against the loopback
// fake API server (pods at 127.0.0.1 and the port of a real server-everything).
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { after, before } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { KubernetesBackend } from '../../src/backends/kubernetes/index.ts';
import { resolveKubernetesSettings } from '../../src/backends/kubernetes/settings.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import type { Unit, UnitSpec } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { backendContract } from '../helpers/backend-contract.ts';
import type { UnitKind } from '../helpers/backend-contract.ts';
import { everythingServer, freePort } from '../helpers/berth.ts';
import { FakeKube } from '../helpers/fake-kube/server.ts';
import { waitFor } from '../helpers/wait.ts';

const fake = new FakeKube();
const config = new k8s.KubeConfig();
let port = 0;
let upstream: ChildProcess | undefined;

before(async () => {
  // The fake first: a port picked before it binds could be the one it takes.
  await fake.start();
  port = await freePort();
  config.loadFromOptions(fake.kubeconfig());
  fake.kubelet.behave(({ image }) => (image.includes('crashing') ? 'crash-loop' : image.includes('failing') ? 'invalid-image' : 'run'));
  upstream = spawn(process.execPath, [everythingServer, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  // Any answer but 404 is server-everything's own (a GET without a session is refused, not unknown).
  await waitFor(() => fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' }).then((r) => r.status !== 404, () => false), { timeoutMs: 20_000 });
});
after(async () => {
  await fake.close();
  upstream?.kill();
});

function makeUnit(name: string, kind: UnitKind): Unit {
  const spec: UnitSpec = { runtime: 'container', image: `example.com/${kind}:1`, port, path: '/mcp', transport: 'streamable-http', args: [], env: { values: kind === 'ok-v2' ? { VERSION: '2' } : {}, sensitive: [], fromUser: [] } };
  return { name, scope: 'shared', spec, specHash: hashSpec({ backend: 'kubernetes', scope: 'shared', spec }), replicas: 1, startupTimeoutMs: 30_000 };
}

backendContract(
  'kubernetes (fake API server)',
  (owner) => {
    const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes' }, owner), config, logger: silentLogger() });
    return { backend, writes: () => backend.apiWrites };
  },
  makeUnit,
  {
    known: {
      'replace: a new specHash starts beside the old one; removing the old leaves the new':
        'a new spec rolls the Deployment in place: Kubernetes keeps old pods until new ones are ready, then removes them (docs/kubernetes.md)',
      'a start that cannot happen: a retryable BackendError, and the instance listed with a failure class':
        'ensure returns once the API accepted the objects; an invalid image shows later, on the pod (failure image-missing), not as a rejection',
    },
  },
);
