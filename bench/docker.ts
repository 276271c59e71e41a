// The Docker backend benchmark: time until 20 containerized servers answer
// MCP, cold (created and started) and on adopt (a new backend with the same
// owner: list + ensure, no container restarted, no daemon writes); then the
// per-call latency of one MCP echo through a published container port against
// the same server as a host process. Run: node bench/docker.ts [--servers N] [--calls N]
// All traffic goes to 127.0.0.1; loops are bounded; everything made here is removed.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Backend } from '../src/backends/backend.ts';
import { toolsOf } from '../test/helpers/backend-contract.ts';
import { freePort, repoRoot, startTestBerth } from '../test/helpers/berth.ts';
import { dockerBackend, dockerUnavailable, httpServerSpec, removeOwned, testImages, testOwner, testSettings, testUnit } from '../test/helpers/docker.ts';
import { waitFor } from '../test/helpers/wait.ts';

const { values } = parseArgs({ options: { servers: { type: 'string', default: '20' }, calls: { type: 'string', default: '500' } } });
const servers = Number(values.servers);
const calls = Number(values.calls);
const unavailable = dockerUnavailable();
if (unavailable !== undefined) {
  console.error(`bench:docker: ${unavailable}`);
  process.exit(1);
}

const owner = testOwner();
const units = Array.from({ length: servers }, (_, i) => testUnit(`bench-${i}`, httpServerSpec()));
const signal = (): AbortSignal => AbortSignal.timeout(120_000);

async function allServe(backend: Backend, ids: readonly string[]): Promise<void> {
  await Promise.all(ids.map((id) => toolsOf(backend, id, 120_000)));
}

async function echoLatency(url: string): Promise<{ p50: number; p99: number }> {
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  const times: number[] = [];
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < calls + 50 && Date.now() < deadline; i++) {
    const t = performance.now();
    await client.callTool({ name: 'echo', arguments: { message: `m${i}` } });
    if (i >= 50) times.push(performance.now() - t);
  }
  await client.close();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)] ?? NaN, p99: times[Math.floor(times.length * 0.99)] ?? NaN };
}

try {
  const cold = dockerBackend(testSettings(owner));
  let t = performance.now();
  // allSettled: a failure must not leave other creates running past the clean-up below.
  const settled = await Promise.allSettled(units.map((unit) => cold.backend.ensure({ unit }, signal())));
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  const ids = settled.flatMap((r) => (r.status === 'fulfilled' ? r.value.map((i) => i.id) : []));
  const coldEnsure = performance.now() - t;
  await allServe(cold.backend, ids);
  const coldReady = performance.now() - t;

  const adopt = dockerBackend(testSettings(owner));
  t = performance.now();
  await adopt.backend.list(signal());
  const adopted = await Promise.all(units.map((unit) => adopt.backend.ensure({ unit }, signal())));
  const adoptEnsure = performance.now() - t;
  await allServe(adopt.backend, adopted.flat().map((i) => i.id));
  const adoptReady = performance.now() - t;
  const restarted = adopted.flat().filter((i, n) => i.id !== ids[n]).length;

  const endpoint = await adopt.backend.endpoint(ids[0] ?? '', signal());
  const container = await echoLatency(endpoint.kind === 'http' ? endpoint.url : '');
  const port = await freePort();
  const host = spawn(process.execPath, [path.join(repoRoot, 'test/fixtures/docker/mcp-server.mjs')], { env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' }, stdio: 'ignore' });
  const hostUrl = `http://127.0.0.1:${port}/mcp`;
  await waitFor(() => fetch(hostUrl, { method: 'GET' }).then(() => true), { timeoutMs: 20_000 });
  const direct = await echoLatency(hostUrl);
  host.kill();

  // The same server through berth's proxy: in a container (docker backend) and as a local process.
  const fixture = path.join(repoRoot, 'test/fixtures/docker/mcp-server.mjs');
  const viaDocker = await startTestBerth(`  web:\n    type: multi-user\n    runtime: container\n    image: ${testImages().TEST_HTTP_IMAGE}\n    port: 8080\n`, `backend: { type: docker, owner: ${owner}, pull: never }\n`);
  const viaLocal = await startTestBerth(`  web:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(fixture)}]\n    transport: streamable-http\n    env: { HOST: 127.0.0.1 }\n`);
  let berthDocker: { p50: number; p99: number };
  let berthLocal: { p50: number; p99: number };
  try {
    berthDocker = await waitFor(() => echoLatency(`${viaDocker.url}/mcp/web`).catch(() => undefined), { timeoutMs: 60_000 });
    berthLocal = await waitFor(() => echoLatency(`${viaLocal.url}/mcp/web`).catch(() => undefined), { timeoutMs: 60_000 });
  } finally {
    await viaDocker.stop();
    await viaLocal.stop();
  }

  const ms = (x: number): string => `${x.toFixed(0)} ms`;
  console.log(`servers: ${servers}`);
  console.log(`cold:  ensure returned after ${ms(coldEnsure)}, all serving MCP after ${ms(coldReady)}`);
  console.log(`adopt: list+ensure returned after ${ms(adoptEnsure)} with ${adopt.daemon.writes} daemon writes and ${restarted} containers replaced; all serving after ${ms(adoptReady)}`);
  console.log(`echo p50/p99: container (published port) ${container.p50.toFixed(2)}/${container.p99.toFixed(2)} ms, host process ${direct.p50.toFixed(2)}/${direct.p99.toFixed(2)} ms, p50 ratio ${(container.p50 / direct.p50).toFixed(2)}`);
  console.log(`through berth, p50/p99: docker backend ${berthDocker.p50.toFixed(2)}/${berthDocker.p99.toFixed(2)} ms, local backend ${berthLocal.p50.toFixed(2)}/${berthLocal.p99.toFixed(2)} ms, p50 ratio ${(berthDocker.p50 / berthLocal.p50).toFixed(2)}`);
} finally {
  await removeOwned(owner);
}
