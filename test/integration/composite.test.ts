// Composite servers against a real server-everything child: the composite's
// in-process server sits behind a Multiplexer, its components are reached
// through the component's own Multiplexer, and the caller is the real SDK client.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, afterEach, before, describe, test } from 'node:test';
import pino from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult, JSONRPCMessage, Progress, Tool } from '@modelcontextprotocol/sdk/types.js';
import { LocalBackend } from '../../src/backends/local/index.ts';
import { stdioChannel } from '../../src/backends/local/channel.ts';
import { StdioChild } from '../../src/backends/local/child.ts';
import type { ComponentRoute, DesiredState, Route, ToolCuration, Unit } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { createCompositeChannel } from '../../src/proxy/routes/composite.ts';
import type { ConnectComponent } from '../../src/proxy/routes/composite.ts';
import { Multiplexer } from '../../src/proxy/mux/multiplex.ts';
import { UpstreamPool } from '../../src/proxy/upstream/pool.ts';
import { SessionStore } from '../../src/proxy/downstream/sessions.ts';
import { ProxyError } from '../../src/http/proxy-error.ts';
import { buildRouteTable, EMPTY_TABLE } from '../../src/proxy/routes/table.ts';
import type { RouteTable } from '../../src/proxy/routes/table.ts';
import { waitFor } from '../helpers/wait.ts';

const require = createRequire(import.meta.url);
const everythingMain = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
const settings = { values: {}, sensitive: [], fromUser: [] };

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

function captureLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { logger: pino({ level: 'debug', base: undefined }, { write: (s: string) => lines.push(JSON.parse(s) as LogLine) }), lines };
}

function component(server: string, prefix: string, tools: Partial<ToolCuration> = {}, timeoutMs = 10_000): ComponentRoute {
  return { server, prefix, timeoutMs, tools: { rename: {}, descriptions: {}, ...tools } };
}

function compositeRoute(components: ComponentRoute[]): Route & { kind: 'composite' } {
  return { kind: 'composite', server: 'dev', components };
}

/** An SDK client connected to a multiplexer, as one downstream session. */
async function clientOn(mux: Multiplexer): Promise<{ client: Client; errors: Error[] }> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  mux.attach(serverSide, 'tester');
  await serverSide.start();
  const client = new Client({ name: 'composite-test', version: '1.0.0' });
  const errors: Error[] = [];
  client.onerror = (err) => errors.push(err);
  await client.connect(clientSide);
  return { client, errors };
}

function text(result: unknown): string {
  const content = (result as CallToolResult).content;
  assert.equal(content[0]?.type, 'text');
  return (content[0] as { text: string }).text;
}

function byName(tools: readonly Tool[], name: string): Tool {
  const tool = tools.find((t) => t.name === name);
  assert.ok(tool, `tool ${name} is listed`);
  return tool;
}

describe('composite channel', () => {
  // One real server-everything child behind a Multiplexer: the component every composite below uses.
  let child: StdioChild;
  let everything: Multiplexer;
  let direct: Client;
  let directTools: Tool[];

  before(async () => {
    child = new StdioChild({ id: 'everything', command: process.execPath, args: [everythingMain, 'stdio'], env: {}, logger: silentLogger(), stopTimeoutMs: 1_000 });
    everything = new Multiplexer({ name: 'everything', channel: stdioChannel(child), logger: silentLogger() });
    child.start();
    await everything.ready(AbortSignal.timeout(30_000));
    direct = (await clientOn(everything)).client;
    directTools = (await direct.listTools()).tools;
  });

  after(async () => {
    await direct.close();
    everything.close();
    await child.stop();
  });

  /** Messages each composite sent to its components, and the transports it opened. */
  let toComponents: { server: string; user: string; message: JSONRPCMessage }[] = [];
  let opened: InMemoryTransport[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    toComponents = [];
    opened = [];
  });

  /** Connects every component name but `broken` to the everything multiplexer, recording what goes there. */
  const connect: ConnectComponent = async (server, user) => {
    if (server === 'broken') throw new Error('connection refused');
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    everything.attach(serverSide, 'tester');
    await serverSide.start();
    const send = clientSide.send.bind(clientSide);
    clientSide.send = (message, options) => {
      toComponents.push({ server, user, message });
      return send(message, options);
    };
    opened.push(clientSide);
    return clientSide;
  };

  async function startComposite(components: ComponentRoute[]): Promise<{ client: Client; errors: Error[]; lines: LogLine[] }> {
    const { logger, lines } = captureLogger();
    const channel = createCompositeChannel({ route: compositeRoute(components), user: 'alice', connect, logger });
    const mux = new Multiplexer({ name: 'dev', channel, logger: silentLogger() });
    const { client, errors } = await clientOn(mux);
    cleanups.push(async () => {
      await client.close();
      mux.close();
      await channel.close();
    });
    return { client, errors, lines };
  }

  test('include, rename, prefix and descriptions shape the list exactly', async () => {
    const { client } = await startComposite([
      component('everything', 'ev_', { include: ['echo', 'get-sum'], rename: { 'get-sum': 'add' }, descriptions: { echo: 'Says it back' } }),
      component('other', '', { include: ['get-tiny-image'] }),
    ]);
    assert.deepEqual(client.getServerCapabilities()?.tools, { listChanged: true });
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['ev_add', 'ev_echo', 'get-tiny-image']);

    const echo = byName(directTools, 'echo');
    assert.deepEqual(byName(tools, 'ev_echo'), { ...echo, name: 'ev_echo', description: 'Says it back' });
    const sum = byName(directTools, 'get-sum');
    assert.deepEqual(byName(tools, 'ev_add'), { ...sum, name: 'ev_add' }, 'schemas, annotations and description kept');
    assert.deepEqual(byName(tools, 'get-tiny-image'), byName(directTools, 'get-tiny-image'));
  });

  test('a renamed, prefixed tool reaches the original', async () => {
    const { client } = await startComposite([component('everything', 'ev_', { include: ['echo', 'get-sum'], rename: { 'get-sum': 'add' } })]);
    assert.equal(text(await client.callTool({ name: 'ev_add', arguments: { a: 2, b: 3 } })), 'The sum of 2 and 3 is 5.');
    assert.equal(text(await client.callTool({ name: 'ev_echo', arguments: { message: 'hi' } })), 'Echo: hi');
    const calls = toComponents.filter((m) => 'method' in m.message && m.message.method === 'tools/call');
    assert.deepEqual(
      calls.map((m) => [m.server, m.user, (m.message as unknown as { params: { name: string } }).params.name]),
      [['everything', 'alice', 'get-sum'], ['everything', 'alice', 'echo']],
    );
  });

  test('exclude leaves out the named tools and keeps the rest', async () => {
    const { client } = await startComposite([component('everything', '', { exclude: ['echo', 'get-sum'] })]);
    const names = (await client.listTools()).tools.map((t) => t.name).sort();
    const expected = directTools.map((t) => t.name).filter((n) => n !== 'echo' && n !== 'get-sum').sort();
    assert.ok(expected.length > 0);
    assert.deepEqual(names, expected);
  });

  test('colliding names: the first component keeps the name, with a warning', async () => {
    const { client, lines } = await startComposite([component('everything', '', { include: ['echo'] }), component('other', '', { include: ['get-sum'], rename: { 'get-sum': 'echo' } })]);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name), ['echo']);
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'first' } })), 'Echo: first');
    assert.ok(lines.some((l) => l.msg.includes('collision') && l['tool'] === 'echo' && l['dropped'] === 'other.get-sum'));
  });

  test('an unknown tool is a JSON-RPC invalid params error', async () => {
    const { client } = await startComposite([component('everything', 'ev_', { include: ['echo'] })]);
    for (const name of ['nope', 'echo', 'ev_get-sum']) {
      await assert.rejects(client.callTool({ name, arguments: {} }), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, -32602);
        assert.match(err.message, new RegExp(`Unknown tool: ${name}$`));
        return true;
      });
    }
  });

  test('a broken component is left out and the others keep working', async () => {
    const { client, lines } = await startComposite([component('broken', 'b_'), component('everything', 'ev_', { include: ['echo'] })]);
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['ev_echo']);
    assert.equal(text(await client.callTool({ name: 'ev_echo', arguments: { message: 'still here' } })), 'Echo: still here');
    const warning = lines.find((l) => l.msg.includes('unavailable'));
    assert.ok(warning, 'the broken component is logged');
    assert.equal(warning['component'], 'broken');
    assert.match(String(warning['err']), /connection refused/);
  });

  test('progress of a long-running tool reaches the caller under its own token', async () => {
    const { client, errors } = await startComposite([component('everything', 'ev_', { include: ['trigger-long-running-operation'] })]);
    const progress: Progress[] = [];
    const result = await client.callTool({ name: 'ev_trigger-long-running-operation', arguments: { duration: 0.2, steps: 4 } }, undefined, {
      onprogress: (p) => progress.push(p),
    });
    assert.match(text(result), /Long running operation completed/);
    assert.deepEqual(progress.map((p) => [p.progress, p.total]), [[1, 4], [2, 4], [3, 4], [4, 4]]);
    assert.deepEqual(errors, [], 'no progress under a token the client does not know');
  });

  test('cancelling a call cancels it at the component', async () => {
    const { client } = await startComposite([component('everything', '', { include: ['trigger-long-running-operation'] })]);
    const abort = new AbortController();
    let progressed = 0;
    const call = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 300 } }, undefined, {
      signal: abort.signal,
      onprogress: () => progressed++,
    });
    await waitFor(() => progressed > 0, { message: 'first progress' });
    abort.abort(new Error('user gave up'));
    await assert.rejects(call, /user gave up/);
    const forwarded = toComponents.find((m) => 'method' in m.message && m.message.method === 'tools/call');
    assert.ok(forwarded && 'id' in forwarded.message);
    const upstreamId = forwarded.message.id;
    await waitFor(
      () => toComponents.find((m) => 'method' in m.message && m.message.method === 'notifications/cancelled' && (m.message.params as { requestId: unknown }).requestId === upstreamId),
      { message: 'notifications/cancelled sent to the component' },
    );
  });

  test('list_changed from a component reaches the composite clients and refreshes the list', async () => {
    const { client } = await startComposite([component('everything', '', { include: ['echo'] })]);
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['echo']);
    const before = toComponents.filter((m) => 'method' in m.message && m.message.method === 'tools/list').length;
    await client.listTools();
    assert.equal(toComponents.filter((m) => 'method' in m.message && m.message.method === 'tools/list').length, before, 'second listing is cached');

    everything.broadcast('notifications/tools/list_changed');
    await waitFor(() => changed > 0, { message: 'tools/list_changed at the composite client' });
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['echo']);
    assert.ok(toComponents.filter((m) => 'method' in m.message && m.message.method === 'tools/list').length > before, 'listed again after list_changed');
  });

  test('a dropped component is connected again on next use, and clients are told to list again', async () => {
    const { client } = await startComposite([component('everything', '', { include: ['echo'] })]);
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'one' } })), 'Echo: one');
    assert.equal(opened.length, 1);
    await opened[0]!.close();
    assert.equal(changed, 0, 'a drop alone reconnects nothing');
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'two' } })), 'Echo: two');
    assert.equal(opened.length, 2, 'connected again');
    await waitFor(() => changed > 0, { message: 'tools/list_changed after the reconnect' });
  });
});

describe('composite routes in the route table', () => {
  let backend: LocalBackend;
  let pool: UpstreamPool;
  before(() => {
    backend = new LocalBackend({ logger: silentLogger(), baseDir: process.cwd() });
    pool = new UpstreamPool({ backend, logger: silentLogger() });
  });
  after(async () => {
    await pool.close();
    await backend.close();
  });

  test('each user gets an own composite, reaching per-user components as that user', async () => {
    const unit: Unit = {
      name: 'everything',
      scope: 'per-user',
      spec: { runtime: 'command', command: process.execPath, args: [everythingMain, 'stdio'], env: settings },
      specHash: 'test',
      replicas: 1,
      startupTimeoutMs: 30_000,
    };
    pool.publish(unit, []);
    const desired: DesiredState = {
      backend: 'local',
      units: [unit],
      routes: [
        compositeRoute([component('everything', 'ev_', { include: ['get-sum'], rename: { 'get-sum': 'add' } })]),
        { kind: 'hosted', server: 'everything', unit: 'everything', scope: 'per-user', headers: settings, requestTimeoutMs: 300_000 },
      ],
    };
    let table: RouteTable = EMPTY_TABLE;
    const sessions = new SessionStore({ idleTtlMs: 60_000, maxSessions: 100 });
    const { logger, lines } = captureLogger();
    table = buildRouteTable(desired, table, 1, { upstreams: pool, sessions, logger, maxBodyBytes: 1 << 20, keepAliveMs: 15_000, lookup: (server) => table.handlers.get(server) });
    const handler = table.handlers.get('dev');
    assert.equal(handler?.kind, 'mcp');
    if (handler?.kind !== 'mcp') return;

    const signal = AbortSignal.timeout(30_000);
    const alice = await handler.endpoint.acquire('alice', signal);
    assert.equal(await handler.endpoint.acquire('alice', signal), alice, 'one multiplexer per user');
    const bob = await handler.endpoint.acquire('bob', signal);
    assert.notEqual(bob, alice);

    const { client } = await clientOn(alice);
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['ev_add'], JSON.stringify(lines));
    assert.equal(text(await client.callTool({ name: 'ev_add', arguments: { a: 40, b: 2 } })), 'The sum of 40 and 2 is 42.');
    assert.deepEqual(pool.status().map((s) => s.user), ['alice'], 'the component instance runs for alice only');

    handler.close();
    await waitFor(() => alice.sessionCount === 0, { message: 'composite sessions closed' });
    // A composite shutting down is a coded 503, not a 500 "bug".
    await assert.rejects(handler.endpoint.acquire('alice', signal), (err: unknown) => err instanceof ProxyError && err.code === 'upstream_closed' && err.status === 503 && /shutting down/.test(err.message));
    await client.close();
  });
});
