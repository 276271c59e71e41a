// Docker in tests: a daemon started on demand (the same script .ci/run uses),
// images built locally without a registry, and clean-up of everything a test
// owner created. Tests skip only when no daemon can start, and say why.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Docker from 'dockerode';
import { Daemon } from '../../src/backends/docker/daemon.ts';
import { DockerBackend } from '../../src/backends/docker/index.ts';
import type { DockerSettings } from '../../src/backends/docker/spec.ts';
import { LABELS } from '../../src/backends/labels.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import type { Transport, Unit, UnitSpec } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { repoRoot } from './berth.ts';

export interface TestImages {
  readonly BASE_IMAGE: string;
  readonly BERTH_IMAGE: string;
  readonly TEST_RUNTIME_IMAGE: string;
  readonly TEST_HTTP_IMAGE: string;
}

let daemonState: { reason?: string } | undefined;
let images: TestImages | undefined;

/** Undefined when a daemon answers (started here if need be); otherwise why not, for `t.skip`. */
export function dockerUnavailable(): string | undefined {
  daemonState ??= (() => {
    const run = spawnSync('bash', [path.join(repoRoot, 'scripts/docker-daemon.sh')], { encoding: 'utf8', timeout: 240_000 });
    if (run.status === 0) return {};
    const reason = `no Docker daemon could be started: ${(run.stderr || run.error?.message || 'unknown').trim().split('\n').slice(-3).join(' / ')}`;
    console.error(`SKIPPING Docker tests: ${reason}`);
    return { reason };
  })();
  return daemonState.reason;
}

/** berth's image and the test images, built once per content (scripts/docker-images.sh). */
export function testImages(): TestImages {
  if (images !== undefined) return images;
  const run = spawnSync('bash', [path.join(repoRoot, 'scripts/docker-images.sh')], { encoding: 'utf8', timeout: 600_000 });
  if (run.status !== 0) throw new Error(`scripts/docker-images.sh failed:\n${run.stderr}`);
  const pairs = run.stdout.trim().split('\n').map((line) => line.split('=') as [string, string]);
  images = Object.fromEntries(pairs) as unknown as TestImages;
  return images;
}

/** A fresh owner id per test file, so parallel runs and leftovers never meet. */
export function testOwner(): string {
  return `t${randomBytes(4).toString('hex')}`;
}

/** backend.pods.egress letting servers reach everywhere: their network is an ordinary bridge, ports published. */
export const OPEN_EGRESS: readonly string[] = ['0.0.0.0/0', '::/0'];

export function testSettings(owner: string, overrides: Partial<DockerSettings> = {}): DockerSettings {
  return {
    owner,
    network: `berth-${owner}`,
    networkMode: 'published',
    publishHost: '127.0.0.1',
    pull: 'never',
    runtimeImage: testImages().TEST_RUNTIME_IMAGE,
    readOnlyRootFilesystem: true,
    tmpfs: ['/tmp'],
    pidsLimit: 128,
    egress: [],
    ...overrides,
  };
}

export function dockerBackend(settings: DockerSettings): { backend: DockerBackend; daemon: Daemon } {
  const daemon = new Daemon();
  return { backend: new DockerBackend({ daemon, settings, logger: silentLogger() }), daemon };
}

/** Backends of a test file, each with a fresh owner; `removeAll` (in `after`) removes what any of them made. */
export function ownedBackends(): { setUp(overrides?: Partial<DockerSettings>): { owner: string; backend: DockerBackend; daemon: Daemon }; owners: readonly string[]; removeAll(): Promise<void> } {
  const owners: string[] = [];
  return {
    setUp(overrides = {}) {
      const owner = testOwner();
      owners.push(owner);
      return { owner, ...dockerBackend(testSettings(owner, overrides)) };
    },
    owners,
    async removeAll() {
      for (const owner of owners) await removeOwned(owner);
    },
  };
}

/** A unit as resolve would make it: the specHash covers the spec and scope. */
export function testUnit(name: string, spec: UnitSpec, options: { scope?: 'shared' | 'per-user'; replicas?: number } = {}): Unit {
  const scope = options.scope ?? 'shared';
  return { name, scope, spec, specHash: hashSpec({ spec, scope, backend: 'docker' }), replicas: options.replicas ?? 1, startupTimeoutMs: 30_000 };
}

/** The fixture served over streamable HTTP (or legacy SSE at /sse) by its own image. */
export function httpServerSpec(env: Record<string, string> = {}, options: { resources?: { cpu?: string; memory?: string }; image?: string; transport?: Transport } = {}): UnitSpec {
  const { resources, image, transport = 'streamable-http' } = options;
  const path = transport === 'sse' ? '/sse' : '/mcp';
  return {
    runtime: 'container',
    image: image ?? testImages().TEST_HTTP_IMAGE,
    port: 8080,
    path,
    transport,
    args: [],
    env: { values: { ...(transport === 'sse' ? fixtureListener(path, transport) : {}), ...env }, sensitive: [], fromUser: [] },
    ...(resources === undefined ? {} : { resources }),
  };
}

/** The fixture on stdio, run in the runtime image behind `berth bridge`. */
export function stdioServerSpec(env: Record<string, string> = {}): UnitSpec {
  return { runtime: 'command', command: 'node', args: ['/app/fixtures/mcp-server.mjs', 'stdio'], env: { values: env, sensitive: [], fromUser: [] } };
}

/** The fixture serving streamable HTTP itself at `path`, run directly in the runtime image (runtime command). */
export function httpCommandSpec(path: string, transport: Transport = 'streamable-http'): UnitSpec {
  return { runtime: 'command', command: 'node', args: ['/app/fixtures/mcp-server.mjs'], transport, path, env: { values: fixtureListener(path, transport), sensitive: [], fromUser: [] } };
}

/** The fixture's environment for serving `transport` at `path`. */
function fixtureListener(path: string, transport: Transport): Record<string, string> {
  return { MCP_PATH: path, ...(transport === 'sse' ? { TRANSPORT: 'sse' } : {}) };
}

export const docker = new Docker();

/** Removes every container and network labelled with this owner. */
export async function removeOwned(owner: string): Promise<void> {
  const filters = { label: [`${LABELS.owner}=${owner}`] };
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  const networks = await docker.listNetworks({ filters });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
}

/** Runs a container to completion and returns its exit code and output (for probes from inside a network). */
export async function runToCompletion(options: Docker.ContainerCreateOptions, timeoutMs = 60_000): Promise<{ code: number; output: string }> {
  const container = await docker.createContainer(options);
  try {
    await container.start();
    const result = (await Promise.race([container.wait(), new Promise((_, reject) => setTimeout(() => reject(new Error('probe container timed out')), timeoutMs).unref())])) as { StatusCode: number };
    const logs = await container.logs({ stdout: true, stderr: true });
    return { code: result.StatusCode, output: logs.toString('utf8') };
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}
