// Traces and MCP metrics through a real berth: the SDK client sends a
// traceparent in `_meta`, a real MCP server (the SDK's) reports the `_meta`
// it received, and an OTLP/HTTP receiver on loopback decodes what berth
// exported. One trace must run from the client's span through berth's SERVER
// and CLIENT spans to the upstream, on every kind of route.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { DURATION_BUCKETS } from '../../src/observe/trace/attributes.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { configText, connectClient, repoRoot, startTestBerth } from '../helpers/berth.ts';
import type { OtlpReceiver, ReceivedSpan } from '../helpers/otlp.ts';
import { startOtlpReceiver } from '../helpers/otlp.ts';
import { waitFor } from '../helpers/wait.ts';

const metaServer = path.join(repoRoot, 'test/fixtures/children/meta-server.ts');
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;

/** A W3C traceparent of a made-up caller span, sampled. */
function callerContext(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

/** What the fixture's `meta` tool answers: the `_meta` and HTTP traceparent its request arrived with. */
async function callMeta(client: Client, traceparent: string, tool = 'meta'): Promise<{ meta: Record<string, string>; traceparent: string | null; isError: boolean }> {
  const result = await client.callTool({ name: tool, arguments: { secret: 'do-not-record' }, _meta: { traceparent, baggage: 'tenant=blue' } });
  const text = (result.content as { text: string }[])[0]?.text ?? '{}';
  return { ...(result.isError === true ? { meta: {}, traceparent: null } : (JSON.parse(text) as { meta: Record<string, string>; traceparent: string | null })), isError: result.isError === true };
}

function spanIdOf(traceparent: string): string {
  return traceparent.split('-')[2] ?? '';
}

async function httpFixture(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [metaServer, 'http'], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const m = /listening (\d+)/.exec(chunk.toString());
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`meta-server exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}/mcp`, child };
}

describe('telemetry: one trace from the client through berth to the upstream', () => {
  let receiver: OtlpReceiver;
  let berth: TestBerth;
  let remote: { url: string; child: ChildProcess };
  const saved: Record<string, string | undefined> = {};
  const env = (name: string, value: string | undefined): void => {
    saved[name] = process.env[name];
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  };

  before(async () => {
    receiver = await startOtlpReceiver();
    remote = await httpFixture();
    env('OTEL_EXPORTER_OTLP_ENDPOINT', receiver.url);
    // The default protocol, http/protobuf: the receiver decodes real OTLP protobuf.
    env('OTEL_EXPORTER_OTLP_PROTOCOL', undefined);
    env('OTEL_BSP_SCHEDULE_DELAY', '20');
    env('OTEL_METRIC_EXPORT_INTERVAL', '100');
    env('OTEL_SERVICE_NAME', 'berth-under-test');
    const servers = `  piped:
    type: multi-user
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(metaServer)}]
  far:
    type: remote
    url: ${remote.url}
  hosted:
    type: multi-user
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(metaServer)}, http]
    transport: streamable-http
    path: /mcp
  combo:
    type: composite
    components:
      - server: piped
        prefix: p_
`;
    berth = await startTestBerth(servers, 'telemetry: { sampling: 1, capture: [piped] }\n');
  });

  after(async () => {
    await berth?.stop();
    remote?.child.kill();
    await receiver?.close();
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  /** The SERVER span berth made for the caller's request, and its CLIENT span to the upstream, once exported. */
  async function spansOf(traceId: string, name: string, server: string): Promise<{ serverSpan: ReceivedSpan; clientSpan: ReceivedSpan }> {
    return waitFor(() => {
      const mine = receiver.spans.filter((s) => s.traceId === traceId && s.name === name && s.attributes['berth.server'] === server);
      const serverSpan = mine.find((s) => s.kind === SERVER);
      const clientSpan = mine.find((s) => s.kind === CLIENT && s.parentSpanId === serverSpan?.spanId);
      return serverSpan !== undefined && clientSpan !== undefined ? { serverSpan, clientSpan } : undefined;
    }, { message: `spans of ${name} on ${server} in trace ${traceId}` });
  }

  test('stdio: the upstream gets berth\'s CLIENT span as its parent, in one trace with the caller', async () => {
    const client = await connectClient(berth.url, 'piped');
    const caller = callerContext();
    const seen = await callMeta(client, caller.traceparent);
    assert.equal(seen.meta['traceparent']?.split('-')[1], caller.traceId, 'the upstream is in the caller\'s trace');
    assert.notEqual(spanIdOf(seen.meta['traceparent'] ?? ''), caller.spanId, 'berth put its own span in between');
    assert.equal(seen.meta['baggage'], 'tenant=blue', 'baggage travels on');
    const { serverSpan, clientSpan } = await spansOf(caller.traceId, 'tools/call meta', 'piped');
    assert.equal(serverSpan.parentSpanId, caller.spanId, 'berth\'s SERVER span is the caller\'s child');
    assert.equal(spanIdOf(seen.meta['traceparent'] ?? ''), clientSpan.spanId, 'the upstream\'s parent is berth\'s CLIENT span');
    assert.equal(serverSpan.attributes['mcp.method.name'], 'tools/call');
    assert.equal(serverSpan.attributes['gen_ai.tool.name'], 'meta');
    assert.equal(serverSpan.attributes['gen_ai.operation.name'], 'execute_tool');
    assert.equal(serverSpan.attributes['network.transport'], 'tcp');
    assert.equal(typeof serverSpan.attributes['mcp.session.id'], 'string');
    assert.equal(typeof serverSpan.attributes['jsonrpc.request.id'], 'string');
    assert.equal(serverSpan.attributes['client.address'], '127.0.0.1');
    assert.match(String(serverSpan.attributes['berth.user.hash']), /^[0-9a-f]{16}$/);
    assert.equal(clientSpan.attributes['network.transport'], 'pipe');
    assert.equal(clientSpan.attributes['berth.backend'], 'local');
    assert.equal(typeof clientSpan.attributes['berth.instance'], 'string');
    assert.equal(typeof clientSpan.attributes['mcp.protocol.version'], 'string');
    // Opted in: the arguments and result are recorded on this server.
    assert.match(String(clientSpan.attributes['gen_ai.tool.call.arguments']), /do-not-record/);
    assert.equal(serverSpan.resource['service.name'], 'berth-under-test');
    await client.close();
  });

  test('stdio: a tool error is error.type tool_error with an ERROR status', async () => {
    const client = await connectClient(berth.url, 'piped');
    const caller = callerContext();
    const seen = await callMeta(client, caller.traceparent, 'broken');
    assert.equal(seen.isError, true);
    const { serverSpan, clientSpan } = await spansOf(caller.traceId, 'tools/call broken', 'piped');
    for (const span of [serverSpan, clientSpan]) {
      assert.equal(span.attributes['error.type'], 'tool_error');
      assert.equal(span.status.code, ERROR);
    }
    await client.close();
  });

  test('stdio: a request the upstream makes of the client is relayed as a SERVER and a CLIENT span, the client getting the context', async () => {
    const client = await connectClient(berth.url, 'piped', { sampling: {} });
    let asked: Record<string, unknown> | undefined;
    client.setRequestHandler(CreateMessageRequestSchema, (request) => {
      asked = request.params._meta;
      return { model: 'none', role: 'assistant', content: { type: 'text', text: 'ok' } };
    });
    const caller = callerContext();
    await callMeta(client, caller.traceparent, 'ask');
    const traceparent = String(asked?.['traceparent'] ?? '');
    assert.match(traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, 'the client got a trace context with the request');
    const relayed = await waitFor(() => receiver.spans.find((s) => s.kind === CLIENT && s.name === 'sampling/createMessage' && s.spanId === spanIdOf(traceparent)), { message: 'the CLIENT span of the relayed request' });
    const received = receiver.spans.find((s) => s.spanId === relayed.parentSpanId);
    assert.equal(received?.kind, SERVER, 'berth received the upstream\'s request in a SERVER span');
    await client.close();
  });

  test('remote: the same trace, and the HTTP traceparent header beside _meta', async () => {
    const client = await connectClient(berth.url, 'far');
    const caller = callerContext();
    const seen = await callMeta(client, caller.traceparent);
    assert.equal(seen.meta['traceparent']?.split('-')[1], caller.traceId);
    assert.equal(seen.traceparent, seen.meta['traceparent'], 'the header carries the same context as _meta');
    const { serverSpan, clientSpan } = await spansOf(caller.traceId, 'tools/call meta', 'far');
    assert.equal(serverSpan.parentSpanId, caller.spanId);
    assert.equal(spanIdOf(seen.meta['traceparent'] ?? ''), clientSpan.spanId);
    assert.equal(clientSpan.attributes['network.transport'], 'tcp');
    assert.equal(clientSpan.attributes['server.address'], '127.0.0.1');
    assert.equal(typeof clientSpan.attributes['server.port'], 'number');
    // Not opted in: nothing of the arguments.
    assert.equal(clientSpan.attributes['gen_ai.tool.call.arguments'], undefined);
    await client.close();
  });

  test('hosted HTTP: the instance gets the context in _meta and in the traceparent header', async () => {
    const client = await connectClient(berth.url, 'hosted');
    const caller = callerContext();
    const seen = await callMeta(client, caller.traceparent);
    assert.equal(seen.meta['traceparent']?.split('-')[1], caller.traceId);
    assert.equal(seen.traceparent, seen.meta['traceparent'], 'the header carries the same context as _meta');
    const { serverSpan, clientSpan } = await spansOf(caller.traceId, 'tools/call meta', 'hosted');
    assert.equal(serverSpan.parentSpanId, caller.spanId);
    assert.equal(spanIdOf(seen.meta['traceparent'] ?? ''), clientSpan.spanId);
    assert.equal(clientSpan.attributes['network.transport'], 'tcp');
    assert.equal(clientSpan.attributes['server.address'], '127.0.0.1');
    assert.equal(clientSpan.attributes['berth.backend'], 'local');
    assert.equal(typeof clientSpan.attributes['berth.instance'], 'string');
    await client.close();
  });

  test('composite: the composite\'s spans, then the component\'s, then the upstream, in one trace', async () => {
    const client = await connectClient(berth.url, 'combo');
    const caller = callerContext();
    const seen = await callMeta(client, caller.traceparent, 'p_meta');
    assert.equal(seen.meta['traceparent']?.split('-')[1], caller.traceId);
    const outer = await spansOf(caller.traceId, 'tools/call p_meta', 'combo');
    assert.equal(outer.serverSpan.parentSpanId, caller.spanId);
    assert.equal(outer.clientSpan.attributes['network.transport'], 'inproc');
    const inner = await spansOf(caller.traceId, 'tools/call meta', 'piped');
    assert.equal(inner.serverSpan.parentSpanId, outer.clientSpan.spanId, 'the component\'s SERVER span is the composite\'s CLIENT span\'s child');
    assert.equal(spanIdOf(seen.meta['traceparent'] ?? ''), inner.clientSpan.spanId, 'the upstream\'s parent is the component\'s CLIENT span');
    await client.close();
  });

  test('a traceparent header alone parents the SERVER span; beside a different _meta one it is a link', async () => {
    const header = callerContext();
    const client = await connectClient(berth.url, 'piped', {}, { traceparent: header.traceparent });
    const byHeader = await client.callTool({ name: 'meta', arguments: {} });
    assert.notEqual(byHeader.isError, true);
    const alone = await spansOf(header.traceId, 'tools/call meta', 'piped');
    assert.equal(alone.serverSpan.parentSpanId, header.spanId);
    const caller = callerContext();
    await callMeta(client, caller.traceparent);
    const both = await spansOf(caller.traceId, 'tools/call meta', 'piped');
    assert.equal(both.serverSpan.parentSpanId, caller.spanId, '_meta wins');
    assert.deepEqual(both.serverSpan.links, [{ traceId: header.traceId, spanId: header.spanId }], 'the header\'s context is a link');
    await client.close();
  });

  test('2026-07-28 (stateless): one trace too, and no mcp.session.id', async () => {
    const caller = callerContext();
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, traceparent: caller.traceparent };
    const res = await fetch(`${berth.url}/mcp/piped`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'meta' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'meta', arguments: {}, _meta: meta } }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { result: { content: { text: string }[] } };
    const seen = JSON.parse(body.result.content[0]?.text ?? '{}') as { meta: Record<string, string> };
    assert.equal(seen.meta['traceparent']?.split('-')[1], caller.traceId);
    const { serverSpan, clientSpan } = await spansOf(caller.traceId, 'tools/call meta', 'piped');
    assert.equal(serverSpan.parentSpanId, caller.spanId);
    assert.equal(spanIdOf(seen.meta['traceparent'] ?? ''), clientSpan.spanId);
    assert.equal(serverSpan.attributes['mcp.session.id'], undefined, 'a stateless request has no session');
    assert.equal(serverSpan.attributes['mcp.protocol.version'], '2026-07-28');
    assert.equal(serverSpan.attributes['client.address'], '127.0.0.1');
    // The same caller has the same pseudonym in either era.
    const client = await connectClient(berth.url, 'piped');
    const session = callerContext();
    await callMeta(client, session.traceparent);
    const sessionEra = await spansOf(session.traceId, 'tools/call meta', 'piped');
    assert.equal(serverSpan.attributes['berth.user.hash'], sessionEra.serverSpan.attributes['berth.user.hash']);
    await client.close();
  });

  test('metrics: the four MCP durations, with the conventions\' buckets', async () => {
    // A session that ends (DELETE) has its duration; berth's own upstream sessions end when it stops.
    const client = await connectClient(berth.url, 'piped');
    await (client.transport as StreamableHTTPClientTransport).terminateSession();
    await client.close();
    for (const metric of ['mcp.server.operation.duration', 'mcp.client.operation.duration', 'mcp.server.session.duration']) {
      const point = await waitFor(() => receiver.points.find((p) => p.metric === metric), { message: `a ${metric} point` });
      assert.equal(point.unit, 's');
      assert.deepEqual(point.explicitBounds, DURATION_BUCKETS);
    }
    const call = await waitFor(() => receiver.points.find((p) => p.metric === 'mcp.client.operation.duration' && p.attributes['gen_ai.tool.name'] === 'broken'));
    assert.equal(call.attributes['error.type'], 'tool_error');
    assert.equal(call.attributes['mcp.method.name'], 'tools/call');
    assert.deepEqual(receiver.rejected, []);
    assert.deepEqual([...new Set(receiver.encodings)], ['application/x-protobuf']);
  });

  test('metrics: berth\'s sessions with its upstreams end when it stops, with their duration', async () => {
    await berth.berth.stop();
    const point = await waitFor(() => receiver.points.find((p) => p.metric === 'mcp.client.session.duration' && p.attributes['network.transport'] === 'pipe'), { message: 'a mcp.client.session.duration point' });
    assert.deepEqual(point.explicitBounds, DURATION_BUCKETS);
    assert.equal(point.attributes['error.type'], undefined, 'a session berth ended on purpose ended without an error');
    assert.equal(typeof point.attributes['mcp.protocol.version'], 'string');
  });
});

describe('telemetry off loads no OpenTelemetry code', () => {
  const script = path.join(repoRoot, 'test/fixtures/children/telemetry-modules.ts');

  /** The @opentelemetry modules a berth resolves while serving one call, with `head` in its config and `env` set. */
  async function modulesLoaded(head: string, env: Record<string, string>): Promise<string[]> {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-telemetry-'));
    const file = path.join(dir, 'berth.yaml');
    writeFileSync(file, configText(`  piped:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(metaServer)}]\n`, head));
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
    const child = spawn(process.execPath, [script, file, 'piped'], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0);
    // prom-client (berth's /metrics) loads the OpenTelemetry API for its exemplars, telemetry on or off.
    return (JSON.parse(out.trim().split('\n').at(-1) ?? '[]') as string[]).filter((s) => !(s.startsWith('@opentelemetry/api from ') && s.includes('/node_modules/prom-client/')));
  }

  test('without a telemetry block or an OTLP endpoint nothing of OpenTelemetry is resolved', async () => {
    assert.deepEqual(await modulesLoaded('', {}), []);
  });

  test('OTEL_SDK_DISABLED=true wins over the block', async () => {
    assert.deepEqual(await modulesLoaded('telemetry: { sampling: 1 }\n', { OTEL_SDK_DISABLED: 'true' }), []);
  });

  test('on, the SDK and the exporter are loaded (the check above can fail); http/json exports OTLP/JSON', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const loaded = await modulesLoaded('telemetry: { sampling: 1 }\n', { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
      assert.ok(loaded.some((s) => s.startsWith('@opentelemetry/sdk-trace-base from ')), loaded.join(', '));
      assert.ok(loaded.some((s) => s.startsWith('@opentelemetry/exporter-trace-otlp-http from ')), loaded.join(', '));
      // The child flushed at its stop: its tools/list went out as OTLP/JSON.
      assert.ok(receiver.spans.some((s) => s.name === 'tools/list' && s.kind === SERVER), receiver.spans.map((s) => s.name).join(', '));
      assert.deepEqual([...new Set(receiver.encodings)], ['application/json']);
    } finally {
      await receiver.close();
    }
  });
});
