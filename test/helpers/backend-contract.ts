// The backend contract suite: what every backend (local, docker, kubernetes)
// must do, written against the Backend interface only. A backend's test file
// calls `backendContract` with a way to make its backend and its units.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Backend, BackendErrorCode, InstanceEvent, ObservedInstance, PlacementReplicas, UpstreamTransport } from '../../src/backends/backend.ts';
import { BackendError } from '../../src/backends/backend.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import type { Unit, UnitSpec } from '../../src/desired/types.ts';
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

/** Every runtime × transport a unit can have: stdio runtimes, and the two HTTP transports of `command` and `container`. */
export const COMBINATIONS = ['npx stdio', 'uvx stdio', 'command stdio', 'command streamable-http', 'command sse', 'container streamable-http', 'container sse'] as const;
export type Combination = (typeof COMBINATIONS)[number];

/** What a backend does where backends differ; the suite asserts each choice, never skips it. */
export interface Capabilities {
  /**
   * Instances outlive the backend: a new backend with the same owner adopts
   * them, and close() leaves them running (containers, pods). Otherwise they
   * are this backend's alone and close() stops them (local children).
   */
  readonly outlivesBerth: boolean;
  /** A new specHash starts `beside` the old instance (the pool hands over, then removes it) or the platform rolls it `in-place`. */
  readonly replace: 'beside' | 'in-place';
  /** A start that cannot happen: ensure `rejects` (retryable), or accepts and the instance is `reported` failed in list(). */
  readonly startFailure: 'rejects' | 'reported';
  /** The backend publishes its ready replicas through replicas(). */
  readonly replicas: boolean;
  /**
   * A surplus replica goes `at-once` when ensure scales down (the default), or
   * `eventually`: a controller removes it after ensure returns, through its grace period.
   */
  readonly scaleDown?: 'at-once' | 'eventually';
  /** Per combination: a unit of it that serves a tool named `echo`, or the code ensure refuses it with (not retryable). */
  readonly runtimes: { readonly [C in Combination]: ((name: string) => Unit) | { readonly refused: BackendErrorCode } };
}

export interface ContractOptions {
  readonly capabilities: Capabilities;
  /** Why the suite cannot run here; it is then skipped with this reason. */
  readonly skip?: string;
  /** How long an instance may take to serve MCP. */
  readonly readyTimeoutMs?: number;
  /** Per-case timeout, when the tier's default is too short (real pods that start and terminate). */
  readonly caseTimeoutMs?: number;
  /** The runtime × transport combinations this run covers; default all (a real cluster runs only images it holds). */
  readonly combinations?: readonly Combination[];
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
  try {
    // Inside the try: a failed connect must close too, or an SSE transport keeps reconnecting.
    await client.connect(transport.transport === 'sse' ? new SSEClientTransport(url, opts) : new StreamableHTTPClientTransport(url, opts));
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

/** A spec of the combination for a backend that refuses it: what it runs never matters. */
function refusedSpec(combination: Combination): UnitSpec {
  const env = { values: {}, sensitive: [], fromUser: [] };
  const [runtime, transport] = combination.split(' ') as [UnitSpec['runtime'], 'stdio' | 'streamable-http' | 'sse'];
  if (runtime === 'container') return { runtime, image: 'example.invalid/refused:1', port: 8080, path: '/mcp', transport: transport === 'sse' ? 'sse' : 'streamable-http', args: [], env };
  if (runtime === 'command') return { runtime, command: 'refused', args: [], env, ...(transport === 'stdio' ? {} : { transport, path: '/mcp' }) };
  return { runtime, package: 'refused', args: [], env };
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

export function backendContract(name: string, makeBackend: (owner: string) => ContractBackend, makeUnit: (name: string, kind: UnitKind) => Unit, options: ContractOptions): void {
  const readyMs = options.readyTimeoutMs ?? 30_000;
  const can = options.capabilities;
  const each = options.caseTimeoutMs === undefined ? {} : { timeout: options.caseTimeoutMs };
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

    test('create: ensure makes the instance, which serves MCP at its endpoint', each, async () => {
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

    test('replicas and users: one instance per replica, one per user, each with its own id', each, async () => {
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
      if (can.scaleDown === 'eventually') {
        assert.ok(scaledDown.some((i) => i.replica === 0));
        await waitFor(async () => ofUnit(await backend.list(signal()), shared).length === 1, { timeoutMs: readyMs, intervalMs: 250, message: 'the surplus replica gone' });
      } else {
        assert.deepEqual(scaledDown.map((i) => i.replica), [0]);
        assert.equal(ofUnit(await backend.list(signal()), shared).length, 1, 'the surplus replica is gone');
      }
    });

    test(`adopt: a new backend with the same owner ${can.outlivesBerth ? 'lists the instances and ensure changes nothing' : 'finds none of them and starts its own'}`, each, async () => {
      const first = make();
      const unit = makeUnit('adopt', 'ok');
      const [instance] = await first.backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      const running = await waitFor(async () => ofUnit(await first.backend.list(signal()), unit).find((i) => i.state === 'running'), { timeoutMs: readyMs, message: 'running' });

      const second = make();
      const listed = ofUnit(await second.backend.list(signal()), unit);
      const before = second.writes();
      const adopted = await second.backend.ensure({ unit }, signal());
      if (!can.outlivesBerth) {
        // Its instances are its own processes: another backend neither sees nor shares them.
        assert.deepEqual(listed, []);
        assert.ok(second.writes() - before > 0, 'ensure started an instance of its own');
        assert.equal(adopted.length, 1);
        assert.ok((await toolsOf(second.backend, adopted[0]?.id ?? '', readyMs)).includes('echo'));
        assert.ok((await toolsOf(first.backend, instance.id, readyMs)).includes('echo'), 'the first backend’s instance is untouched');
        return;
      }
      assert.deepEqual(listed.map((i) => i.id), [instance.id]);
      assert.equal(second.writes() - before, 0, 'ensure of an unchanged, running placement makes no writes');
      assert.deepEqual(adopted.map((i) => i.id), [instance.id]);
      assert.equal(adopted[0]?.startedAt, running.startedAt, 'not restarted');
      assert.equal(adopted[0]?.restarts, running.restarts);
      assert.ok((await toolsOf(second.backend, instance.id, readyMs)).includes('echo'));
    });

    test(`replace: a new specHash ${can.replace === 'beside' ? 'starts beside the old one; removing the old leaves the new' : 'rolls the instance in place: the old one leaves by itself once the new one runs'}`, each, async () => {
      const { backend } = make();
      const v1 = makeUnit('replace', 'ok');
      const v2 = makeUnit('replace', 'ok-v2');
      assert.notEqual(v1.specHash, v2.specHash);
      const [old] = await backend.ensure({ unit: v1 }, signal());
      assert.ok(old !== undefined);
      if (can.replace === 'in-place') await waitFor(async () => ofUnit(await backend.list(signal()), v1).find((i) => i.id === old.id && i.state === 'running'), { timeoutMs: readyMs, message: 'the old instance running' });
      await backend.ensure({ unit: v2 }, signal());
      if (can.replace === 'beside') {
        const both = ofUnit(await backend.list(signal()), v1);
        assert.deepEqual(both.map((i) => i.specHash).sort(), [v1.specHash, v2.specHash].sort());
        await backend.remove(old.id, signal());
      }
      // In place, the platform removes the old instance only after the new one runs; nobody calls remove.
      const next = await waitFor(
        async () => {
          const listed = ofUnit(await backend.list(signal()), v1);
          return listed.length === 1 && listed[0]?.specHash === v2.specHash && listed[0].state === 'running' ? listed[0] : undefined;
        },
        { timeoutMs: readyMs, message: 'only the new spec’s instance, running' },
      );
      assert.notEqual(next.id, old.id);
      assert.ok((await toolsOf(backend, next.id, readyMs)).includes('echo'));
    });

    test('remove: the instance goes; removing it again is not an error', each, async () => {
      const { backend } = make();
      const unit = makeUnit('remove', 'ok');
      const [instance] = await backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      await backend.remove(instance.id, signal());
      assert.deepEqual(ofUnit(await backend.list(signal()), unit), []);
      await backend.remove(instance.id, signal());
      await assert.rejects(backend.endpoint(instance.id, signal()), (err: unknown) => err instanceof BackendError);
    });

    test('orphans: instances of units no longer desired are listed and removed; other owners are never touched', each, async () => {
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

    test('events: a created instance is reported running, a removed one removed', each, async () => {
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

    test('abort: an aborted ensure writes nothing; one aborted mid-start leaves nothing a later ensure cannot converge', each, async () => {
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

    test(`a start that cannot happen: ${can.startFailure === 'rejects' ? 'a retryable BackendError' : 'ensure accepts it'}, and the instance listed with a failure class`, each, async () => {
      const { backend } = make();
      const unit = makeUnit('failing', 'failing');
      if (can.startFailure === 'rejects') await assert.rejects(backend.ensure({ unit }, signal()), (err: unknown) => err instanceof BackendError && err.retryable);
      else assert.equal((await backend.ensure({ unit }, signal())).length, 1);
      const listed = await waitFor(async () => ofUnit(await backend.list(signal()), unit).find((i) => i.failure !== undefined), { timeoutMs: readyMs, message: 'the failing instance listed with a failure' });
      assert.ok(listed.lastError !== undefined, JSON.stringify(listed));
    });

    test('a server that exits at once: reported exited with its last words in logs', each, async () => {
      const { backend } = make();
      const unit = makeUnit('crashing', 'crashing');
      const [instance] = await backend.ensure({ unit }, signal());
      assert.ok(instance !== undefined);
      const failed = await waitFor(async () => ofUnit(await backend.list(signal()), unit).find((i) => i.failure !== undefined), { timeoutMs: readyMs, message: 'a failure' });
      assert.ok(['exited', 'crash-loop'].includes(failed.failure ?? ''), failed.failure);
      assert.match(failed.lastError ?? '', /exit/);
      // The failed instance's own id: on Kubernetes, ensure reported a placeholder before the pod existed,
      // and a restarted container's log is empty until it prints again.
      await waitFor(async () => (await backend.logs(failed.id, 10, signal())).length > 0, { timeoutMs: readyMs, intervalMs: 250, message: 'its output in the logs' });
    });

    test(`replicas(): ${can.replicas ? 'each ready replica with its transport; a removed one leaves the snapshot' : 'not offered; the pool reaches instances through endpoint()'}`, each, async () => {
      const { backend } = make();
      if (!can.replicas) {
        assert.equal(backend.replicas, undefined);
        return;
      }
      assert.ok(backend.replicas !== undefined);
      const unit: Unit = { ...makeUnit('replicas-feed', 'ok'), replicas: 2 };
      const abort = new AbortController();
      const snapshots: PlacementReplicas[] = [];
      void (async () => {
        for await (const snapshot of backend.replicas?.(abort.signal) ?? []) snapshots.push(snapshot);
      })().catch(() => undefined);
      try {
        await backend.ensure({ unit }, signal());
        const latest = (): PlacementReplicas | undefined => snapshots.findLast((r) => r.unit === unit.name && r.userHash === undefined);
        const two = await waitFor(() => (latest()?.ready.length === 2 ? latest() : undefined), { timeoutMs: readyMs, message: 'a snapshot with both replicas ready' });
        assert.ok(two.ready.every((r) => r.specHash === unit.specHash && r.transport.kind === 'http'));
        const [gone, kept] = two.ready;
        assert.ok(gone !== undefined && kept !== undefined);
        assert.ok((await toolsOf(backend, kept.instanceId, readyMs)).includes('echo'));
        await backend.ensure({ unit: { ...unit, replicas: 1 } }, signal());
        await waitFor(() => latest()?.ready.length === 1, { timeoutMs: readyMs, message: 'a snapshot with one replica after scaling down' });
      } finally {
        abort.abort();
      }
    });

    test(`close(): idempotent, ends event streams, and ${can.outlivesBerth ? 'leaves instances running for the next berth' : 'stops its instances'}`, each, async () => {
      const own = makeBackend(`${owner}c`);
      made.push(own);
      const unit = makeUnit('close', 'ok');
      assert.equal((await own.backend.ensure({ unit }, signal())).length, 1);
      // The running instance as listed: a Kubernetes ensure may answer before its pod exists (a placeholder id).
      const instance = await waitFor(async () => ofUnit(await own.backend.list(signal()), unit).find((i) => i.state === 'running'), { timeoutMs: readyMs, message: 'running' });
      let ended = false;
      const watching = (async () => {
        for await (const _ of own.backend.events(signal())) {
          // Only the end of the stream matters here.
        }
        ended = true;
      })();
      await own.backend.close(signal());
      await own.backend.close(signal());
      await Promise.race([watching, new Promise((_, reject) => setTimeout(() => reject(new Error('events() did not end on close()')), readyMs).unref())]);
      assert.ok(ended);
      const next = make(`${owner}c`);
      const listed = ofUnit(await next.backend.list(signal()), unit);
      if (can.outlivesBerth) {
        assert.deepEqual(listed.map((i) => [i.id, i.state]), [[instance.id, 'running']]);
        assert.ok((await toolsOf(next.backend, instance.id, readyMs)).includes('echo'));
      } else {
        assert.deepEqual(listed, []);
        assert.deepEqual(ofUnit(await own.backend.list(signal()), unit), [], 'the closed backend holds nothing');
      }
    });

    describe('every runtime × transport', () => {
      for (const combination of options.combinations ?? COMBINATIONS) {
        const runtime = can.runtimes[combination];
        const transport = combination.split(' ')[1];
        if (typeof runtime !== 'function') {
          test(`${combination}: refused before anything starts (${runtime.refused})`, each, async () => {
            const b = make();
            const spec = refusedSpec(combination);
            const unit: Unit = { name: combination.replace(' ', '-'), scope: 'shared', spec, specHash: hashSpec(spec), replicas: 1, startupTimeoutMs: readyMs };
            const before = b.writes();
            await assert.rejects(b.backend.ensure({ unit }, signal()), (err: unknown) => err instanceof BackendError && err.code === runtime.refused && !err.retryable);
            assert.equal(b.writes() - before, 0);
          });
          continue;
        }
        test(`${combination}: served, reached over ${transport === 'stdio' ? 'stdio or a bridge' : transport}`, each, async () => {
          const { backend } = make();
          const unit = runtime(combination.replace(' ', '-'));
          assert.equal(`${unit.spec.runtime} ${'transport' in unit.spec ? (unit.spec.transport ?? 'stdio') : 'stdio'}`, combination, 'the unit is of its combination');
          const [instance] = await backend.ensure({ unit }, signal());
          assert.ok(instance !== undefined);
          const endpoint = await waitFor(() => backend.endpoint(instance.id, signal()).catch(() => undefined), { timeoutMs: readyMs, message: 'an endpoint' });
          if (transport === 'stdio') assert.ok(endpoint.kind === 'stdio' || endpoint.transport === 'streamable-http', JSON.stringify(endpoint));
          else assert.ok(endpoint.kind === 'http' && endpoint.transport === transport, JSON.stringify(endpoint));
          assert.ok((await toolsOf(backend, instance.id, readyMs)).includes('echo'));
          await backend.remove(instance.id, signal());
        });
      }
    });
  });
}
