// The backend contract's promises end to end: hosted HTTP servers on the
// local backend, replacements that keep in-flight calls, starts that outlive
// their callers, and reloads that survive a backend that throws.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { delegatingBackend } from '../helpers/delegating-backend.ts';
import { LocalBackend } from '../../src/backends/local/index.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { createMetrics } from '../../src/observe/metrics.ts';
import { UpstreamPool } from '../../src/proxy/upstream/pool.ts';
import { Controller } from '../../src/reconcile/controller.ts';
import { connectClient, everythingServer, everythingYaml, startTestBerth, status } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { configText } from '../helpers/berth.ts';

const text = (r: unknown): string => ((r as CallToolResult).content[0] as { text: string }).text;

function httpEverything(name: string, transport: 'streamable-http' | 'sse', extra = ''): string {
  const mode = transport === 'sse' ? 'sse' : 'streamableHttp';
  const path = transport === 'sse' ? '/sse' : '/mcp';
  return `  ${name}:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(everythingServer)}, ${mode}]\n    transport: ${transport}\n    path: ${path}\n${extra}`;
}

describe('hosted HTTP servers on the local backend', () => {
  for (const transport of ['streamable-http', 'sse'] as const) {
    test(`a ${transport} command server is reached on the port berth assigns, and its sessions survive a replacement`, async () => {
      const b = await startTestBerth(httpEverything('web', transport));
      try {
        const client = await connectClient(b.url, 'web');
        assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'over http' } })), 'Echo: over http');
        const before = (await status(b.url)).servers[0]?.instances[0]?.id;
        b.writeConfig(httpEverything('web', transport, '    env: { FLAVOUR: b }\n'));
        await waitFor(async () => {
          const instances = (await status(b.url)).servers[0]?.instances ?? [];
          return instances.length === 1 && instances[0]?.id !== before && instances[0]?.state === 'ready';
        }, { timeoutMs: 30_000, message: 'the replacement serves alone' });
        assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'same session' } })), 'Echo: same session');
        await client.close();
      } finally {
        await b.stop();
      }
    });
  }
});

describe('replacement', () => {
  test('calls in flight on the old instance finish; new calls go to the new one', async () => {
    const b = await startTestBerth(everythingYaml());
    try {
      const client = await connectClient(b.url, 'everything');
      const long = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 3 } }, undefined, { timeout: 30_000 });
      const generation = (await status(b.url)).generation;
      b.writeConfig(everythingYaml('everything', '    env: { FLAVOUR: b }\n'));
      await waitFor(async () => (await status(b.url)).generation > generation, { timeoutMs: 20_000, message: 'reloaded' });
      const result = (await long) as CallToolResult;
      assert.equal(result.isError, undefined, JSON.stringify(result));
      assert.match(text(result), /completed/i);
      assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'after' } })), 'Echo: after');
      await client.close();
    } finally {
      await b.stop();
    }
  });
});

describe('per-user starts', () => {
  test('the second caller of a shared start survives the first caller leaving', async () => {
    const backend = new LocalBackend({ logger: silentLogger(), baseDir: process.cwd() });
    const pool = new UpstreamPool({ backend, logger: silentLogger() });
    try {
      const dir = mkdtempSync(path.join(tmpdir(), 'berth-pool-'));
      const file = path.join(dir, 'berth.yaml');
      writeFileSync(file, configText(everythingYaml('mine').replace('multi-user', 'single-user')));
      const unit = resolveDesiredState(loadConfigFile(file)).units[0];
      assert.ok(unit !== undefined);
      pool.publish(unit, []);
      const first = new AbortController();
      const a = pool.acquire('mine', 'alice', first.signal);
      const b = pool.acquire('mine', 'alice', AbortSignal.timeout(30_000));
      first.abort();
      await assert.rejects(a, /went away/);
      const mux = await b;
      await mux.ready(AbortSignal.timeout(30_000));
      assert.equal(pool.status().filter((s) => s.user === 'alice').length, 1, 'one instance for alice');
    } finally {
      await pool.close();
      await backend.close();
    }
  });
});

describe('reloads', () => {
  test('a backend whose list() throws fails the reload, not berth; units still converge once it answers', async () => {
    const local = new LocalBackend({ logger: silentLogger(), baseDir: process.cwd() });
    let broken = true;
    // Fault injection at the edge: the real backend, with its daemon "down".
    const backend = delegatingBackend(local, {
      list: () => (broken ? Promise.reject(new Error('daemon down')) : local.list()),
    });
    const pool = new UpstreamPool({ backend, logger: silentLogger() });
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-reload-'));
    const file = path.join(dir, 'berth.yaml');
    writeFileSync(file, configText(everythingYaml()));
    const swaps: number[] = [];
    const controller = new Controller({ file, logger: silentLogger(), metrics: createMetrics(), backend, upstreams: pool, routes: { swap: (_d, generation) => void swaps.push(generation) } });
    try {
      const result = await controller.reload('start');
      assert.equal(result.kind, 'applied-with-errors');
      assert.match(result.kind === 'applied-with-errors' ? result.errors.join('\n') : '', /daemon down/);
      assert.deepEqual(swaps, [1], 'the routes of a valid config are served even while the backend cannot list');
      broken = false;
      await waitFor(async () => (await local.list()).length === 1 && controller.units.get('everything')?.outcome.kind === 'ok', { timeoutMs: 30_000, message: 'the unit converged after the backend recovered' });
      const again = await controller.reload('again');
      assert.equal(again.kind, 'applied');
    } finally {
      await controller.close();
      await pool.close();
      await local.close();
    }
  });

  test('a server that never becomes ready holds up neither the others nor the next reload', async () => {
    const sleeper = `  sleeper:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: ["-e", "setInterval(() => {}, 1000)"]\n    startupTimeout: 60s\n`;
    const b = await startTestBerth(sleeper + everythingYaml());
    try {
      const client = await connectClient(b.url, 'everything');
      assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'up' } })), 'Echo: up');
      const generation = (await status(b.url)).generation;
      b.writeConfig(sleeper + everythingYaml() + everythingYaml('other'));
      const other = await waitFor(async () => {
        const r = await status(b.url);
        return r.generation > generation && r.servers.find((s) => s.name === 'other')?.instances[0]?.state === 'ready';
      }, { timeoutMs: 20_000, message: 'the new server is ready while sleeper still starts' });
      assert.ok(other);
      assert.equal((await status(b.url)).servers.find((s) => s.name === 'sleeper')?.instances[0]?.state, 'starting');
      await client.close();
    } finally {
      await b.stop();
    }
  });
});

describe('per-user instance caps', () => {
  test('a server at maxInstances and a user at instancesPerUser get a clear 429', async () => {
    const keys = { alice: 'berth_alice-key-0123456789abcdef', bob: 'berth_bob-key-0123456789abcdefgh' };
    const head = `limits: { instancesPerUser: 1 }\nauth:\n  - type: apiKey\n    keys:\n      - { user: alice, key: "${keys.alice}" }\n      - { user: bob, key: "${keys.bob}" }\n`;
    const single = (name: string): string => everythingYaml(name, '    maxInstances: 1\n').replace('multi-user', 'single-user');
    const b = await startTestBerth(single('one') + single('two'), head);
    const init = (server: string, key: string): Promise<Response> =>
      fetch(`${b.url}/mcp/${server}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-api-key': key },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
      });
    try {
      assert.equal((await init('one', keys.alice)).status, 200);
      const serverFull = await init('one', keys.bob);
      assert.equal(serverFull.status, 429);
      assert.match(await serverFull.text(), /server one runs its limit of 1/);
      const userFull = await init('two', keys.alice);
      assert.equal(userFull.status, 429);
      assert.match(await userFull.text(), /your limit/);
      assert.equal((await init('two', keys.bob)).status, 200);
    } finally {
      await b.stop();
    }
  });
});

describe('the file watch', () => {
  test('an edit written in place right after start is not lost while the watch is still starting', async () => {
    const b = await startTestBerth(everythingYaml());
    try {
      writeFileSync(b.file, configText(everythingYaml() + everythingYaml('other')));
      await waitFor(async () => (await status(b.url)).servers.some((s) => s.name === 'other'), { timeoutMs: 20_000, message: 'the edit applied' });
    } finally {
      await b.stop();
    }
  });
});
