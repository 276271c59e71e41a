// The Docker backend when things change behind berth's back, on the real
// daemon: a container restarted by hand (it comes back on another host port),
// the daemon's event stream lost (simulated by cutting berth's connections to
// the daemon socket through a relay: restarting dockerd here would disturb
// every other test), and a container stopped while nobody watched.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import pino from 'pino';
import type { InstanceEvent } from '../../src/backends/backend.ts';
import { BackendError } from '../../src/backends/backend.ts';
import { Daemon } from '../../src/backends/docker/daemon.ts';
import { DockerBackend } from '../../src/backends/docker/index.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { UpstreamPool } from '../../src/proxy/upstream/pool.ts';
import { observedUnits } from '../../src/reconcile/controller.ts';
import { planChanges } from '../../src/reconcile/plan.ts';
import { OPEN_EGRESS, docker, dockerBackend, dockerUnavailable, httpServerSpec, removeOwned, testImages, testOwner, testSettings, testUnit } from '../helpers/docker.ts';
import { waitFor } from '../helpers/wait.ts';

const unavailable = dockerUnavailable();
const signal = (): AbortSignal => AbortSignal.timeout(60_000);
const owners: string[] = [];

function newOwner(): string {
  const owner = testOwner();
  owners.push(owner);
  return owner;
}

/** The host port a running container's 8080 is published on. */
async function hostPortOf(id: string): Promise<number> {
  const info = await docker.getContainer(id).inspect();
  return Number(info.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort);
}

/**
 * A unix socket that relays every connection to the real daemon's socket.
 * `cut()` ends every relayed connection and refuses new ones, as a daemon
 * that went away does; `open()` serves again.
 */
async function daemonRelay(): Promise<{ socketPath: string; connections: () => number; cut(): Promise<void>; open(): Promise<void>; close(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-relay-'));
  const socketPath = path.join(dir, 'docker.sock');
  const open = new Set<Socket>();
  let server: Server | undefined;
  const listen = async (): Promise<void> => {
    const s = createServer((client) => {
      const daemon = connect('/var/run/docker.sock');
      open.add(client);
      const end = (): void => {
        open.delete(client);
        client.destroy();
        daemon.destroy();
      };
      client.on('error', end).on('close', end);
      daemon.on('error', end).on('close', end);
      client.pipe(daemon).pipe(client);
    });
    await new Promise<void>((resolve) => s.listen(socketPath, resolve));
    server = s;
  };
  await listen();
  const cut = async (): Promise<void> => {
    const s = server;
    server = undefined;
    for (const c of [...open]) c.destroy();
    if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  return {
    socketPath,
    connections: () => open.size,
    cut,
    open: listen,
    async close() {
      await cut();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('docker: drift behind berth\'s back', { ...(unavailable === undefined ? {} : { skip: unavailable }) }, () => {
  before(() => testImages(), { timeout: 600_000 });
  after(async () => {
    for (const owner of owners) await removeOwned(owner);
  });

  test('a container that vanishes between ensure listing it and starting it (a rolled-back create) is made anew', async () => {
    const owner = newOwner();
    let starts = 0;
    // The real daemon, with two starts interfered with: the first aborted (the container stays
    // created), the second preceded by the container's removal, as the daemon rolls back a create
    // whose request was aborted.
    const daemon = new (class extends Daemon {
      override async start(id: string, signal: AbortSignal): Promise<void> {
        starts++;
        if (starts === 1) throw new BackendError('aborted', 'aborted by the test', { retryable: true });
        if (starts === 2) await docker.getContainer(id).remove({ force: true });
        return super.start(id, signal);
      }
    })();
    const backend = new DockerBackend({ daemon, settings: testSettings(owner), logger: silentLogger() });
    const unit = testUnit('vanishing', httpServerSpec());
    await assert.rejects(backend.ensure({ unit }, signal()), /aborted by the test/);
    const observed = await backend.ensure({ unit }, signal());
    assert.equal(starts, 3);
    assert.equal(observed.length, 1);
    await waitFor(async () => (await backend.list(signal())).some((i) => i.id === observed[0]?.id && i.state === 'running'), { timeoutMs: 30_000, message: 'the container made anew runs' });
  });

  test('a container restarted by hand comes back on another host port, and berth reaches it there', async () => {
    // Ports are published only with egress open (an internal network publishes none).
    const { backend } = dockerBackend(testSettings(newOwner(), { egress: OPEN_EGRESS }));
    const unit = testUnit('moved', httpServerSpec());
    const observed = await backend.ensure({ unit }, signal());
    const id = observed[0]?.id ?? '';
    const pool = new UpstreamPool({ backend, logger: silentLogger() });
    const client = new Client({ name: 't', version: '1' });
    // Holds the old port once the container leaves it, answering nothing: the daemon must pick another, and a client there would hang.
    const squatter = createServer(() => undefined);
    try {
      pool.publish(unit, observed);
      const mux = await pool.acquire('moved', 'alice', signal());
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      mux.attach(serverSide, 'alice');
      await serverSide.start();
      await client.connect(clientSide);
      const echo = async (): Promise<unknown> => ((await client.callTool({ name: 'echo', arguments: { message: 'hi' } }, undefined, { timeout: 3_000 })) as { content: { text: string }[] }).content[0]?.text;
      assert.match(String(await echo()), /hi/);

      const oldPort = await hostPortOf(id);
      await docker.getContainer(id).stop({ t: 1 });
      await new Promise<void>((resolve, reject) => squatter.once('error', reject).listen(oldPort, '127.0.0.1', resolve));
      await docker.getContainer(id).start();
      const newPort = await hostPortOf(id);
      assert.notEqual(newPort, oldPort);

      const answered = await waitFor(() => echo().catch(() => undefined), { timeoutMs: 45_000, intervalMs: 200, message: 'a call reached the container at its new port' });
      assert.match(String(answered), /hi/);
    } finally {
      await client.close();
      await pool.close();
      squatter.close();
    }
  });

  test('a lost event stream is subscribed again with backoff, said in status and logs; what changed meanwhile is reported', async () => {
    const owner = newOwner();
    const relay = await daemonRelay();
    const logs: { msg: string; reason?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as { msg: string });
        cb();
      },
    });
    const backend = new DockerBackend({ daemon: new Daemon({ socketPath: relay.socketPath }), settings: testSettings(owner), logger: pino({ level: 'info' }, sink) });
    const unit = testUnit('watched', httpServerSpec());
    const [instance] = await backend.ensure({ unit }, signal());
    assert.ok(instance !== undefined);
    const events: InstanceEvent[] = [];
    const watch = new AbortController();
    let ended = false;
    void (async () => {
      for await (const e of backend.events(watch.signal)) events.push(e);
      ended = true;
    })();
    try {
      await waitFor(() => relay.connections() > 0, { message: 'the event stream is subscribed' });
      assert.equal(backend.eventStatus().state, 'watching');

      // The daemon goes away: the stream ends, and new connections are refused for a while.
      await relay.cut();
      await waitFor(() => backend.eventStatus().state === 'reconnecting', { message: 'status says the stream is lost' });
      assert.ok(logs.some((l) => l.msg === 'docker events lost; re-subscribing'), 'a warning in the log');
      // Meanwhile the container stops, and nobody hears of it.
      await docker.getContainer(instance.id).stop({ t: 1 });
      assert.equal(ended, false, 'the stream is not given up');

      await relay.open();
      await waitFor(() => backend.eventStatus().state === 'watching', { timeoutMs: 40_000, message: 'subscribed again' });
      assert.equal(backend.eventStatus().reconnects, 1);
      assert.ok(logs.some((l) => l.msg === 'docker events re-subscribed'));
      // What happened in the gap is reported once subscribed again.
      await waitFor(() => events.some((e) => e.kind === 'changed' && e.instance.id === instance.id && e.instance.state === 'exited'), { timeoutMs: 15_000, message: 'the stopped container reported after re-subscribing' });

      // And the new subscription carries new events.
      const seen = events.length;
      await docker.getContainer(instance.id).start();
      await waitFor(() => events.slice(seen).some((e) => e.kind === 'changed' && e.instance.id === instance.id && e.instance.state === 'running'), { timeoutMs: 15_000, message: 'a start event on the new subscription' });
    } finally {
      watch.abort();
      await backend.close();
      await relay.close();
    }
  });

  test('an exited container counts as not running: a resync plans to bring its unit back', async () => {
    const { backend } = dockerBackend(testSettings(newOwner()));
    const unit = testUnit('stopped', httpServerSpec());
    const [instance] = await backend.ensure({ unit }, signal());
    assert.ok(instance !== undefined);
    await docker.getContainer(instance.id).stop({ t: 1 });
    const listed = await backend.list(signal());
    assert.equal(listed.find((i) => i.id === instance.id)?.state, 'exited');
    const desired = { backend: 'docker' as const, units: [unit], routes: [] };
    const plan = planChanges(desired, { units: observedUnits(listed, desired, new Map()), routes: [] });
    assert.deepEqual(plan.actions.map((a) => [a.kind, a.unit.name]), [['create', 'stopped']]);
  });
});
