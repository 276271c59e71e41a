// The backend contract suite: what every backend (local, docker, kubernetes)
// must do, written against the Backend interface only. A backend's test file
// calls `backendContract` with a way to make its backend and its units.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Backend, InstanceEvent, ObservedInstance, UpstreamTransport } from '../../src/backends/backend.ts';
import { BackendError } from '../../src/backends/backend.ts';
import type { Unit } from '../../src/desired/types.ts';
import { waitFor } from './wait.ts';

export interface ContractBackend {
  readonly backend: Backend;
  /** Backend writes made so far (daemon or API calls that change something). */
  writes(): number;
}

/**
 * `ok` and `ok-v2` serve MCP with tools (different specHashes); `failing`
 * cannot start at all (ensure rejects); `crashing` starts and exits at once.
 */
export type UnitKind = 'ok' | 'ok-v2' | 'failing' | 'crashing';

export interface ContractOptions {
  /** Why the suite cannot run here; it is then skipped with this reason. */
  readonly skip?: string;
  /** How long an instance may take to serve MCP. */
  readonly readyTimeoutMs?: number;
  /** Cases this backend does not meet yet, by name, with why: reported as todo, not failing. */
  readonly known?: Readonly<Record<string, string>>;
}

/** Tool names an instance serves, over the transport the backend hands out; retried until it answers. */
export async function toolsOf(backend: Backend, instanceId: string, timeoutMs: number): Promise<string[]> {
  return waitFor(async () => listTools(await backend.endpoint(instanceId, AbortSignal.timeout(5_000))), { timeoutMs, intervalMs: 200, message: `MCP tools of instance ${instanceId}` });
}

async function listTools(transport: UpstreamTransport): Promise<string[]> {
  if (transport.kind === 'stdio') return listToolsOnChannel(transport);
  const url = new URL(transport.url);
  const client = new Client({ name: 'berth-contract', version: '1.0.0' });
  const opts = { requestInit: { headers: { ...transport.headers } } };
  await client.connect(transport.transport === 'sse' ? new SSEClientTransport(url, opts) : new StreamableHTTPClientTransport(url, opts));
  try {
    return (await client.listTools()).tools.map((t) => t.name);
  } finally {
    await client.close();
  }
}

/** Speaks just enough MCP on a stdio channel: initialize, then tools/list. */
async function listToolsOnChannel(transport: UpstreamTransport & { kind: 'stdio' }): Promise<string[]> {
  const answers = new Map<string, (result: Record<string, unknown>) => void>();
  transport.channel.onMessage((m) => {
    const message = m as { id?: string; result?: Record<string, unknown> };
    if (message.id !== undefined && message.result !== undefined) answers.get(message.id)?.(message.result);
  });
  const ask = (method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const id = `contract-${randomBytes(4).toString('hex')}`;
    const answer = new Promise<Record<string, unknown>>((resolve) => answers.set(id, resolve));
    if (!transport.channel.send({ jsonrpc: '2.0', id, method, params })) throw new Error('stdio upstream not running');
    return Promise.race([answer, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${method} unanswered`)), 5_000).unref())]);
  };
  await ask('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'berth-contract', version: '1.0.0' } });
  transport.channel.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  const result = await ask('tools/list', {});
  return (result['tools'] as { name: string }[]).map((t) => t.name);
}

function signal(): AbortSignal {
  return AbortSignal.timeout(60_000);
}

function ofUnit(instances: readonly ObservedInstance[], unit: Unit): ObservedInstance[] {
  return instances.filter((i) => i.unit === unit.name);
}

/** Collects a backend's events in the background until `stop`. */
function collectEvents(backend: Backend): { events: InstanceEvent[]; stop: () => void } {
  const abort = new AbortController();
  const events: InstanceEvent[] = [];
  void (async () => {
    for await (const event of backend.events(abort.signal)) events.push(event);
  })().catch(() => undefined);
  return { events, stop: () => abort.abort() };
}

export function backendContract(name: string, makeBackend: (owner: string) => ContractBackend, makeUnit: (name: string, kind: UnitKind) => Unit, options: ContractOptions = {}): void {
  const readyMs = options.readyTimeoutMs ?? 30_000;
  const contractTest = (title: string, fn: () => Promise<void>): void => {
    const known = options.known?.[title];
    test(title, known === undefined ? {} : { todo: known }, fn);
  };
  describe(`backend contract: ${name}`, { ...(options.skip === undefined ? {} : { skip: options.skip }) }, () => {
    const owner = `c${randomBytes(4).toString('hex')}`;
    const made: ContractBackend[] = [];
    const make = (who = owner): ContractBackend => {
      const b = makeBackend(who);
      made.push(b);
      return b;
    };
    after(async () => {
      // Every instance any backend of this suite still owns goes, then the backends close.
      for (const b of made) {
        for (const i of await b.backend.list(signal()).catch(() => [])) await b.backend.remove(i.id, signal()).catch(() => undefined);
      }
      await Promise.all(made.map((b) => b.backend.close(signal())));
    });

    contractTest('create: ensure makes the instance, which serves MCP at its endpoint', async () => {
      const { backend } = make();
      const unit = makeUnit('create', 'ok');
      const ensured = await backend.ensure({ unit }, signal());
      assert.equal(ensured.length, 1);
      const [instance] = ensured;
      assert.ok(instance !== undefined);
      assert.equal(instance.owner, owner);
      assert.equal(instance.specHash, unit.specHash);
      assert.ok(['creating', 'running'].includes(instance.state), `state ${instance.state}`);
      await waitFor(async () => ofUnit(await backend.list(signal()), unit).find((i) => i.id === instance.id && i.state === 'running'), { timeoutMs: readyMs, message: 'a running instance in list()' });
      assert.ok((await toolsOf(backend, instance.id, readyMs)).includes('echo'));
    });

    contractTest('replicas and users: one instance per replica, one per user, each with its own id', async () => {
      const { backend } = make();
      const shared: Unit = { ...makeUnit('replicas', 'ok'), replicas: 2 };
      const replicas = await backend.ensure({ unit: shared }, signal());
      assert.deepEqual(replicas.map((i) => i.replica).sort(), [0, 1]);
      const perUser: Unit = { ...makeUnit('per-user', 'ok'), scope: 'per-user' };
      const alice = await backend.ensure({ unit: perUser, user: { hash: 'a11ce0000000aaaa', env: { SECRET: 'alice-secret' } } }, signal());
      const bob = await backend.ensure({ unit: perUser, user: { hash: 'b0b0000000000bbb', env: { SECRET: 'bob-secret' } } }, signal());
      assert.equal(alice.length, 1);
      assert.equal(bob.length, 1);
      assert.notEqual(alice[0]?.id, bob[0]?.id);
      assert.equal(alice[0]?.userHash, 'a11ce0000000aaaa');
      assert.equal(bob[0]?.userHash, 'b0b0000000000bbb');
      const scaledDown = await backend.ensure({ unit: { ...shared, replicas: 1 } }, signal());
      assert.deepEqual(scaledDown.map((i) => i.replica), [0]);
      assert.equal(ofUnit(await backend.list(signal()), shared).length, 1, 'the surplus replica is gone');
    });

    contractTest('adopt: a new backend with the same owner lists the instances and ensure changes nothing', async () => {
      const first = make();
      const unit = makeUnit('adopt', 'ok');
      const [instance] = await first.backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      const running = await waitFor(async () => ofUnit(await first.backend.list(signal()), unit).find((i) => i.state === 'running'), { timeoutMs: readyMs, message: 'running' });

      const second = make();
      const listed = ofUnit(await second.backend.list(signal()), unit);
      assert.deepEqual(listed.map((i) => i.id), [instance.id]);
      const before = second.writes();
      const adopted = await second.backend.ensure({ unit }, signal());
      assert.equal(second.writes() - before, 0, 'ensure of an unchanged, running placement makes no writes');
      assert.deepEqual(adopted.map((i) => i.id), [instance.id]);
      assert.equal(adopted[0]?.startedAt, running.startedAt, 'not restarted');
      assert.equal(adopted[0]?.restarts, running.restarts);
      assert.ok((await toolsOf(second.backend, instance.id, readyMs)).includes('echo'));
    });

    contractTest('replace: a new specHash starts beside the old one; removing the old leaves the new', async () => {
      const { backend } = make();
      const v1 = makeUnit('replace', 'ok');
      const v2 = makeUnit('replace', 'ok-v2');
      assert.notEqual(v1.specHash, v2.specHash);
      const [old] = await backend.ensure({ unit: v1 }, signal());
      const [next] = await backend.ensure({ unit: v2 }, signal());
      assert.ok(old !== undefined && next !== undefined);
      assert.notEqual(old.id, next.id);
      const both = ofUnit(await backend.list(signal()), v1);
      assert.deepEqual(both.map((i) => i.specHash).sort(), [v1.specHash, v2.specHash].sort());
      await backend.remove(old.id, signal());
      assert.deepEqual(ofUnit(await backend.list(signal()), v1).map((i) => i.id), [next.id]);
      assert.ok((await toolsOf(backend, next.id, readyMs)).includes('echo'));
    });

    contractTest('remove: the instance goes; removing it again is not an error', async () => {
      const { backend } = make();
      const unit = makeUnit('remove', 'ok');
      const [instance] = await backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      await backend.remove(instance.id, signal());
      assert.deepEqual(ofUnit(await backend.list(signal()), unit), []);
      await backend.remove(instance.id, signal());
      await assert.rejects(backend.endpoint(instance.id, signal()), (err: unknown) => err instanceof BackendError);
    });

    contractTest('orphans: instances of units no longer desired are listed and removed; other owners are never touched', async () => {
      const mine = make();
      const theirs = make(`${owner}x`);
      const orphan = makeUnit('orphan', 'ok');
      const foreign = makeUnit('foreign', 'ok');
      await mine.backend.ensure({ unit: orphan }, signal());
      const [other] = await theirs.backend.ensure({ unit: foreign }, signal());
      assert.ok(other !== undefined);

      // A restarted berth whose config no longer has `orphan`: list, then remove what no unit wants.
      const restarted = make();
      const listed = await restarted.backend.list(signal());
      assert.ok(listed.every((i) => i.owner === owner), 'only its own owner’s instances are listed');
      assert.ok(!listed.some((i) => i.id === other.id));
      for (const i of ofUnit(listed, orphan)) await restarted.backend.remove(i.id, signal());
      assert.deepEqual(ofUnit(await restarted.backend.list(signal()), orphan), []);

      // Another owner's instance is as good as absent: removing it by id does nothing.
      await restarted.backend.remove(other.id, signal());
      assert.deepEqual(ofUnit(await theirs.backend.list(signal()), foreign).map((i) => i.id), [other.id]);
    });

    contractTest('events: a created instance is reported running, a removed one removed', async () => {
      const { backend } = make();
      const watch = collectEvents(backend);
      try {
        const unit = makeUnit('events', 'ok');
        const [instance] = await backend.ensure({ unit }, signal());
        assert.ok(instance !== undefined);
        await waitFor(() => watch.events.find((e) => e.kind === 'changed' && e.instance.id === instance.id && e.instance.state === 'running'), { timeoutMs: readyMs, message: 'a running event' });
        await backend.remove(instance.id, signal());
        await waitFor(() => watch.events.find((e) => e.kind === 'removed' && e.id === instance.id && e.unit === unit.name), { timeoutMs: readyMs, message: 'a removed event' });
      } finally {
        watch.stop();
      }
    });

    contractTest('abort: an aborted ensure writes nothing; one aborted mid-start leaves nothing a later ensure cannot converge', async () => {
      const b = make();
      const unit = makeUnit('abort', 'ok');
      const before = b.writes();
      await assert.rejects(b.backend.ensure({ unit }, AbortSignal.abort()), (err: unknown) => err instanceof BackendError && err.code === 'aborted' && err.retryable);
      assert.equal(b.writes() - before, 0);
      for (const ms of [1, 20, 100]) {
        await b.backend.ensure({ unit: { ...unit, replicas: 2 } }, AbortSignal.timeout(ms)).catch((err: unknown) => {
          // Usually `aborted`; a create the daemon finished after the abort may make the next one collide.
          assert.ok(err instanceof BackendError && err.retryable, `a retryable BackendError, not ${String(err)}`);
        });
      }
      const converged = await b.backend.ensure({ unit: { ...unit, replicas: 2 } }, signal());
      assert.deepEqual(converged.map((i) => i.replica).sort(), [0, 1]);
      await waitFor(async () => {
        const listed = ofUnit(await b.backend.list(signal()), unit);
        return listed.length === 2 && listed.every((i) => i.state === 'running');
      }, { timeoutMs: readyMs, message: 'exactly two running replicas' });
    });

    contractTest('a start that cannot happen: a retryable BackendError, and the instance listed with a failure class', async () => {
      const { backend } = make();
      const unit = makeUnit('failing', 'failing');
      await assert.rejects(backend.ensure({ unit }, signal()), (err: unknown) => err instanceof BackendError && err.retryable);
      const [listed] = ofUnit(await backend.list(signal()), unit);
      assert.ok(listed !== undefined, 'the failing instance is listed');
      assert.ok(listed.failure !== undefined && listed.lastError !== undefined, JSON.stringify(listed));
    });

    contractTest('a server that exits at once: reported exited with its last words in logs', async () => {
      const { backend } = make();
      const unit = makeUnit('crashing', 'crashing');
      const [instance] = await backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      const failed = await waitFor(async () => ofUnit(await backend.list(signal()), unit).find((i) => i.failure !== undefined), { timeoutMs: readyMs, message: 'a failure' });
      assert.ok(['exited', 'crash-loop'].includes(failed.failure ?? ''), failed.failure);
      assert.match(failed.lastError ?? '', /exit/);
      assert.ok((await backend.logs(instance.id, 10, signal())).length > 0, 'the logs hold its output');
    });
  });
}
