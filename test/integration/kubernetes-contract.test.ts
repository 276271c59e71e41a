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
import type { Capabilities, UnitKind } from '../helpers/backend-contract.ts';
import { KUBERNETES_BEHAVIOUR } from '../helpers/kube-units.ts';
import { everythingServer, freePort } from '../helpers/berth.ts';
import { FakeKube } from '../helpers/fake-kube/server.ts';
import { waitFor } from '../helpers/wait.ts';

const fake = new FakeKube();
const config = new k8s.KubeConfig();
let port = 0;
let upstream: ChildProcess | undefined;
let ssePort = 0;
let sseUpstream: ChildProcess | undefined;

before(async () => {
  // The fake first: a port picked before it binds could be the one it takes.
  await fake.start();
  port = await freePort();
  config.loadFromOptions(fake.kubeconfig());
  fake.kubelet.behave(({ image }) => (image.includes('crashing') ? 'crash-loop' : image.includes('failing') ? 'invalid-image' : 'run'));
  upstream = spawn(process.execPath, [everythingServer, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  ssePort = await freePort();
  sseUpstream = spawn(process.execPath, [everythingServer, 'sse'], { env: { ...process.env, PORT: String(ssePort) }, stdio: 'ignore' });
  fake.kubelet.portOf = ({ deployment }) => {
    const transport = [...servedBy].find(([name]) => deployment.endsWith(`-${name}`))?.[1];
    return transport === undefined ? undefined : transport === 'sse' ? ssePort : port;
  };
  // Any answer but 404 is server-everything's own (a GET without a session is refused, not unknown).
  await waitFor(() => fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' }).then((r) => r.status !== 404, () => false), { timeoutMs: 20_000 });
  // The SSE server answers an open stream; the headers are enough.
  await waitFor(
    () =>
      fetch(`http://127.0.0.1:${ssePort}/sse`, { signal: AbortSignal.timeout(2_000) }).then(
        async (r) => {
          await r.body?.cancel();
          return r.ok;
        },
        () => false,
      ),
    { timeoutMs: 20_000 },
  );
});
after(async () => {
  await fake.close();
  upstream?.kill();
  sseUpstream?.kill();
});

function unitOf(name: string, spec: UnitSpec): Unit {
  return { name, scope: 'shared', spec, specHash: hashSpec({ backend: 'kubernetes', scope: 'shared', spec }), replicas: 1, startupTimeoutMs: 30_000 };
}

function makeUnit(name: string, kind: UnitKind): Unit {
  return unitOf(name, { runtime: 'container', image: `example.com/${kind}:1`, port, path: '/mcp', transport: 'streamable-http', args: [], env: { values: kind === 'ok-v2' ? { VERSION: '2' } : {}, sensitive: [], fromUser: [] } });
}

/**
 * Nothing runs in the fake cluster: a pod of a runtime berth runs in its own
 * image (behind `berth bridge`, or a command serving HTTP itself on 8080)
 * is answered by the real server of its transport, through the kubelet's
 * port mapping; a container pod names that server's port itself.
 */
const env = { values: {}, sensitive: [], fromUser: [] };
const served = (name: string, spec: UnitSpec, transport: 'streamable-http' | 'sse'): Unit => {
  servedBy.set(name, transport);
  return unitOf(name, spec);
};
const servedBy = new Map<string, 'streamable-http' | 'sse'>();
const capabilities: Capabilities = {
  ...KUBERNETES_BEHAVIOUR,
  runtimes: {
    'npx stdio': (name) => served(name, { runtime: 'npx', package: '@modelcontextprotocol/server-everything', args: ['stdio'], env }, 'streamable-http'),
    'uvx stdio': (name) => served(name, { runtime: 'uvx', package: 'berth-echo-server', args: [], env }, 'streamable-http'),
    'command stdio': (name) => served(name, { runtime: 'command', command: 'node', args: ['server.js', 'stdio'], env }, 'streamable-http'),
    'command streamable-http': (name) => served(name, { runtime: 'command', command: 'node', args: ['server.js'], transport: 'streamable-http', path: '/mcp', env }, 'streamable-http'),
    'command sse': (name) => served(name, { runtime: 'command', command: 'node', args: ['server.js'], transport: 'sse', path: '/sse', env }, 'sse'),
    'container streamable-http': (name) => unitOf(name, { runtime: 'container', image: 'example.com/http:1', port, path: '/mcp', transport: 'streamable-http', args: [], env }),
    'container sse': (name) => unitOf(name, { runtime: 'container', image: 'example.com/sse:1', port: ssePort, path: '/sse', transport: 'sse', args: [], env }),
  },
};

backendContract(
  'kubernetes (fake API server)',
  (owner) => {
    const backend = new KubernetesBackend({ settings: resolveKubernetesSettings({ type: 'kubernetes' }, owner), config, logger: silentLogger() });
    return { backend, writes: () => backend.apiWrites };
  },
  makeUnit,
  { capabilities },
);
