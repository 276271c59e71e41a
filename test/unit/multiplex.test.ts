// The multiplexer's routing rules, against a scripted upstream channel (the
// edge) and real SDK in-memory transports as clients.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { silentLogger } from '../../src/observe/log.ts';
import type { MessageChannel } from '../../src/proxy/mux/channel.ts';
import { Multiplexer } from '../../src/proxy/mux/multiplex.ts';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { SdkTelemetry } from '../../src/observe/trace/sdk.ts';
import { useTelemetry } from '../../src/observe/trace/telemetry.ts';
import { waitFor } from '../helpers/wait.ts';

type Msg = Record<string, unknown> & { id?: string | number; method?: string; params?: Record<string, unknown> };

/** An upstream that records what it receives and lets the test answer. */
function scriptedUpstream() {
  const received: Msg[] = [];
  let onMessage: (m: unknown) => void = () => undefined;
  let onStart: () => void = () => undefined;
  let onStop: (r: string) => void = () => undefined;
  const channel: MessageChannel = {
    send: (m) => {
      received.push(m as Msg);
      const msg = m as Msg;
      if (msg.method === 'initialize') queueMicrotask(() => onMessage({ jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'scripted', version: '1' } } }));
      return true;
    },
    onMessage: (h) => (onMessage = h),
    onStart: (h) => (onStart = h),
    onStop: (h) => (onStop = h),
  };
  return { channel, received, emit: (m: Msg) => onMessage(m), start: () => onStart(), stop: (r: string) => onStop(r) };
}

/** A downstream client: the client side of an in-memory pair whose server side is attached. */
async function client(mux: Multiplexer, capabilities: Record<string, unknown> = {}, user = 'alice') {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const got: Msg[] = [];
  clientSide.onmessage = (m) => void got.push(m as Msg);
  await serverSide.start();
  await clientSide.start();
  mux.attach(serverSide, user);
  const send = (m: Msg): Promise<void> => clientSide.send(m as JSONRPCMessage);
  await send({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 't', version: '1' } } });
  await waitFor(() => got.some((m) => m.id === 'init'), { message: 'initialize answered' });
  return { got, send, close: () => clientSide.close() };
}

async function ready() {
  const up = scriptedUpstream();
  const mux = new Multiplexer({ name: 'test', channel: up.channel, logger: silentLogger() });
  up.start();
  await mux.ready(AbortSignal.timeout(2_000));
  return { up, mux };
}

describe('Multiplexer', () => {
  test('telemetry: a request\'s spans and a relayed server request\'s spans all end when the upstream stops', async () => {
    const exporter = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    useTelemetry(new SdkTelemetry({ tracerProvider, capture: new Set(), version: '0' }));
    try {
      const { up, mux } = await ready();
      const a = await client(mux, { sampling: {} });
      await a.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'slow' } });
      const call = await waitFor(() => up.received.find((m) => m.method === 'tools/call'));
      assert.match(String((call.params?.['_meta'] as Record<string, unknown> | undefined)?.['traceparent']), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      up.emit({ jsonrpc: '2.0', id: 'up-1', method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } });
      const asked = await waitFor(() => a.got.find((m) => m.method === 'sampling/createMessage'));
      assert.match(String((asked.params?.['_meta'] as Record<string, unknown> | undefined)?.['traceparent']), /^00-/);
      up.stop('crashed');
      const relayed = (): string[] => exporter.getFinishedSpans().filter((s) => s.name !== 'initialize').map((s) => `${s.name}: ${String(s.attributes['error.type'])}`).sort();
      await waitFor(() => relayed().length === 4, { message: 'four spans ended' });
      assert.deepEqual(relayed(), ['sampling/createMessage: upstream_unavailable', 'sampling/createMessage: upstream_unavailable', 'tools/call slow: upstream_unavailable', 'tools/call slow: upstream_unavailable']);
      mux.close();
    } finally {
      useTelemetry(undefined);
    }
  });

  test('initializes the upstream once and answers every client initialize itself', async () => {
    const { up, mux } = await ready();
    const a = await client(mux);
    const b = await client(mux);
    assert.equal(up.received.filter((m) => m.method === 'initialize').length, 1);
    assert.equal(up.received.filter((m) => m.method === 'notifications/initialized').length, 1);
    assert.deepEqual((a.got[0]?.['result'] as Msg)['serverInfo'], { name: 'scripted', version: '1' });
    assert.equal(b.got.length, 1);
  });

  test('rewrites colliding request ids and routes each response home', async () => {
    const { up, mux } = await ready();
    const a = await client(mux);
    const b = await client(mux);
    await a.send({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    await b.send({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const forwarded = await waitFor(() => {
      const f = up.received.filter((m) => m.method === 'tools/list');
      return f.length === 2 ? f : undefined;
    });
    assert.notEqual(forwarded[0]?.id, forwarded[1]?.id);
    up.emit({ jsonrpc: '2.0', id: forwarded[1]?.id, result: { tools: [{ name: 'for-b' }] } });
    up.emit({ jsonrpc: '2.0', id: forwarded[0]?.id, result: { tools: [{ name: 'for-a' }] } });
    await waitFor(() => a.got.length === 2 && b.got.length === 2);
    assert.deepEqual(a.got[1], { jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'for-a' }] } });
    assert.deepEqual(b.got[1], { jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'for-b' }] } });
  });

  test('maps progress tokens per session and forwards cancellation with the upstream id', async () => {
    const { up, mux } = await ready();
    const a = await client(mux);
    await a.send({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'slow', _meta: { progressToken: 'mine' } } });
    const call = await waitFor(() => up.received.find((m) => m.method === 'tools/call'));
    const token = (call.params?.['_meta'] as Msg)['progressToken'];
    assert.notEqual(token, 'mine');
    up.emit({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token, progress: 1 } });
    await waitFor(() => a.got.some((m) => m.method === 'notifications/progress'));
    assert.equal((a.got.find((m) => m.method === 'notifications/progress')?.params as Msg)['progressToken'], 'mine');
    await a.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 5 } });
    const cancel = await waitFor(() => up.received.find((m) => m.method === 'notifications/cancelled'));
    assert.equal(cancel.params?.['requestId'], call.id);
  });

  test('sends a server request to the client whose request is in flight, if it has the capability', async () => {
    const { up, mux } = await ready();
    const idle = await client(mux, { sampling: {} });
    const busy = await client(mux, { sampling: {} });
    await busy.send({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'ask' } });
    await waitFor(() => up.received.some((m) => m.method === 'tools/call'));
    up.emit({ jsonrpc: '2.0', id: 'up-1', method: 'sampling/createMessage', params: { messages: [] } });
    const request = await waitFor(() => busy.got.find((m) => m.method === 'sampling/createMessage'));
    assert.equal(idle.got.some((m) => m.method === 'sampling/createMessage'), false);
    await busy.send({ jsonrpc: '2.0', id: request.id, result: { model: 'm', role: 'assistant', content: { type: 'text', text: 'x' } } });
    const answer = await waitFor(() => up.received.find((m) => m.id === 'up-1'));
    assert.equal((answer['result'] as Msg)['model'], 'm');
  });

  test('refuses a server request no connected client can answer', async () => {
    const { up, mux } = await ready();
    const plain = await client(mux);
    await plain.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ask' } });
    await waitFor(() => up.received.some((m) => m.method === 'tools/call'));
    up.emit({ jsonrpc: '2.0', id: 'up-2', method: 'elicitation/create', params: {} });
    const refusal = await waitFor(() => up.received.find((m) => m.id === 'up-2'));
    assert.match((refusal['error'] as Msg)['message'] as string, /does not support elicitation/);
  });

  test('broadcasts list_changed, and resource updates only to subscribers', async () => {
    const { up, mux } = await ready();
    const a = await client(mux);
    const b = await client(mux);
    await a.send({ jsonrpc: '2.0', id: 2, method: 'resources/subscribe', params: { uri: 'test://r' } });
    await waitFor(() => up.received.some((m) => m.method === 'resources/subscribe'));
    up.emit({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    up.emit({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'test://r' } });
    await waitFor(() => a.got.some((m) => m.method === 'notifications/resources/updated') && b.got.some((m) => m.method === 'notifications/tools/list_changed'));
    assert.ok(a.got.some((m) => m.method === 'notifications/tools/list_changed'));
    assert.equal(b.got.some((m) => m.method === 'notifications/resources/updated'), false);
  });

  test('fails requests in flight when the upstream stops, and re-initializes on restart', async () => {
    const { up, mux } = await ready();
    const a = await client(mux);
    await a.send({ jsonrpc: '2.0', id: 3, method: 'tools/list' });
    await waitFor(() => up.received.some((m) => m.method === 'tools/list'));
    up.stop('exited with code 1');
    const failed = await waitFor(() => a.got.find((m) => m.id === 3));
    assert.match((failed['error'] as Msg)['message'] as string, /exited with code 1/);
    up.start();
    await mux.ready(AbortSignal.timeout(2_000));
    assert.equal(up.received.filter((m) => m.method === 'initialize').length, 2);
    await waitFor(() => a.got.some((m) => m.method === 'notifications/tools/list_changed'), { message: 'clients told to list again' });
  });

  test('hands its sessions over to a replacement', async () => {
    const old = await ready();
    const next = await ready();
    const a = await client(old.mux);
    old.mux.handOver(next.mux);
    assert.equal(old.mux.sessionCount, 0);
    assert.equal(next.mux.sessionCount, 1);
    await waitFor(() => a.got.some((m) => m.method === 'notifications/tools/list_changed'));
    await a.send({ jsonrpc: '2.0', id: 4, method: 'tools/list' });
    await waitFor(() => next.up.received.some((m) => m.method === 'tools/list'));
    assert.equal(old.up.received.some((m) => m.method === 'tools/list'), false);
  });

  test('a hand-over keeps requests in flight on the old upstream: their answers still arrive, then it drains', async () => {
    const old = await ready();
    const next = await ready();
    const a = await client(old.mux);
    await a.send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow' } });
    const call = await waitFor(() => old.up.received.find((m) => m.method === 'tools/call'));
    old.mux.handOver(next.mux);
    const drained = old.mux.drain(AbortSignal.timeout(2_000));
    old.up.emit({ jsonrpc: '2.0', id: call.id, result: { content: [] } });
    await drained;
    assert.equal(old.mux.pendingCount, 0);
    const answer = await waitFor(() => a.got.find((m) => m.id === 7));
    assert.deepEqual(answer['result'], { content: [] });
  });

  test('a request without an answer ends at its deadline; progress restarts the clock', async (t) => {
    const up = scriptedUpstream();
    // The clock is read at each use, so the mocked Date below is the one deadlines see.
    const mux = new Multiplexer({ name: 'test', channel: up.channel, logger: silentLogger(), requestTimeoutMs: () => 1_500, now: () => Date.now() });
    up.start();
    await mux.ready(AbortSignal.timeout(2_000));
    const a = await client(mux);
    // From here time moves only when the test says: no sleeping, no timer that is merely late.
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    await a.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'hang', _meta: { progressToken: 't' } } });
    await settle();
    const call = up.received.find((m) => m.method === 'tools/call');
    assert.ok(call !== undefined, 'the call reached the upstream');
    const token = (call.params?.['_meta'] as Msg)['progressToken'];
    // 2.1 s of progress 0.7 s apart against a 1.5 s deadline.
    for (let i = 0; i < 3; i++) {
      t.mock.timers.tick(700);
      up.emit({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token, progress: i } });
      await settle();
    }
    assert.equal(a.got.some((m) => m.id === 1), false, 'progress kept the request alive past one deadline');
    t.mock.timers.tick(1_500);
    await settle();
    const timedOut = a.got.find((m) => m.id === 1);
    assert.equal((timedOut?.['error'] as Msg | undefined)?.['code'], -32004);
    assert.ok(up.received.some((m) => m.method === 'notifications/cancelled' && m.params?.['requestId'] === call.id), 'the upstream is told to stop');
  });

  test('a server request is refused when requests of two users are in flight, never sent to the wrong one', async () => {
    const { up, mux } = await ready();
    const alice = await client(mux, { sampling: {} }, 'alice');
    const bob = await client(mux, { sampling: {} }, 'bob');
    await alice.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a' } });
    await bob.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'b' } });
    await waitFor(() => up.received.filter((m) => m.method === 'tools/call').length === 2);
    up.emit({ jsonrpc: '2.0', id: 'up-3', method: 'sampling/createMessage', params: { messages: [] } });
    const refusal = await waitFor(() => up.received.find((m) => m.id === 'up-3'));
    assert.match((refusal['error'] as Msg)['message'] as string, /several users/);
    assert.equal([...alice.got, ...bob.got].some((m) => m.method === 'sampling/createMessage'), false);
  });

  test('log messages go to the user whose request is running, or to nobody', async () => {
    const { up, mux } = await ready();
    const alice = await client(mux, {}, 'alice');
    const bob = await client(mux, {}, 'bob');
    await alice.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a' } });
    await waitFor(() => up.received.some((m) => m.method === 'tools/call'));
    up.emit({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'for alice' } });
    await waitFor(() => alice.got.some((m) => m.method === 'notifications/message'));
    assert.equal(bob.got.some((m) => m.method === 'notifications/message'), false);
    await bob.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'b' } });
    await waitFor(() => up.received.filter((m) => m.method === 'tools/call').length === 2);
    up.emit({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'whose?' } });
    up.emit({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    await waitFor(() => bob.got.some((m) => m.method === 'notifications/tools/list_changed'));
    assert.equal([...alice.got, ...bob.got].filter((m) => m.method === 'notifications/message').length, 1, 'the ambiguous log line reached nobody');
  });
});
