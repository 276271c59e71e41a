// What spans say about JSON-RPC messages, by the MCP conventions: names,
// attributes, outcomes and the `_meta` carrier.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRequest, metaCarrier, outcomeOf, withMeta } from '../../src/observe/trace/message.ts';
import { startTelemetry, telemetryWanted } from '../../src/observe/trace/start.ts';

test('span names and attributes follow the request', () => {
  const cases = [
    { name: 'tool call', request: { id: 7, method: 'tools/call', params: { name: 'echo' } }, span: 'tools/call echo', attrs: { 'mcp.method.name': 'tools/call', 'jsonrpc.request.id': '7', 'gen_ai.tool.name': 'echo', 'gen_ai.operation.name': 'execute_tool' } },
    { name: 'prompt', request: { id: 'a', method: 'prompts/get', params: { name: 'greet' } }, span: 'prompts/get greet', attrs: { 'gen_ai.prompt.name': 'greet' } },
    { name: 'resource', request: { id: 1, method: 'resources/read', params: { uri: 'file:///x' } }, span: 'resources/read', attrs: { 'mcp.resource.uri': 'file:///x' } },
    { name: 'unknown method', request: { id: 1, method: 'vendor/anything', params: { name: 'x' } }, span: '_OTHER', attrs: { 'mcp.method.name': '_OTHER' } },
  ];
  for (const c of cases) {
    const d = describeRequest(c.request);
    assert.equal(d.name, c.span, c.name);
    for (const [k, v] of Object.entries(c.attrs)) assert.equal(d.attributes[k], v, `${c.name}: ${k}`);
    assert.equal(d.metric['jsonrpc.request.id'], undefined, `${c.name}: no ids on metrics`);
  }
});

test('outcomes: error.type, status code and which side counts an error', () => {
  const cases = [
    { name: 'result', response: { id: 1, result: {} }, side: 'server' as const, want: { error: false } },
    { name: 'tool error', response: { id: 1, result: { isError: true } }, side: 'server' as const, want: { error: true, errorType: 'tool_error' } },
    { name: 'internal error, server', response: { id: 1, error: { code: -32603, message: 'boom' } }, side: 'server' as const, want: { error: true, errorType: '-32603', statusCode: '-32603', message: 'boom' } },
    { name: 'invalid params, server: the caller\'s fault', response: { id: 1, error: { code: -32602, message: 'no such tool' } }, side: 'server' as const, want: { error: false, errorType: '-32602', statusCode: '-32602' } },
    { name: 'invalid params, client: every code counts', response: { id: 1, error: { code: -32602, message: 'no such tool' } }, side: 'client' as const, want: { error: true, errorType: '-32602' } },
  ];
  for (const c of cases) {
    const o = outcomeOf(c.response, c.side);
    for (const [k, v] of Object.entries(c.want)) assert.equal(o[k as keyof typeof o], v, `${c.name}: ${k}`);
  }
});

test('the _meta carrier: read only with a traceparent; written replacing trace keys, keeping the rest', () => {
  assert.equal(metaCarrier({ _meta: { tracestate: 'a=b' } }), undefined);
  assert.deepEqual(metaCarrier({ _meta: { traceparent: 'tp', baggage: 'k=v', progressToken: 3 } }), { traceparent: 'tp', baggage: 'k=v' });
  const params = withMeta({ name: 'x', _meta: { traceparent: 'old', tracestate: 'old', progressToken: 5 } }, { traceparent: 'new' });
  assert.deepEqual(params, { name: 'x', _meta: { progressToken: 5, traceparent: 'new' } });
});

test('telemetry is on by the file or an OTLP endpoint, never with OTEL_SDK_DISABLED=true', () => {
  const cases = [
    { name: 'nothing', config: undefined, env: {}, want: false },
    { name: 'endpoint', config: undefined, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, want: true },
    { name: 'traces endpoint', config: undefined, env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }, want: true },
    { name: 'block', config: {}, env: {}, want: true },
    { name: 'block off', config: { enabled: false }, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, want: false },
    { name: 'disabled', config: { sampling: 1 }, env: { OTEL_SDK_DISABLED: 'TRUE' }, want: false },
  ];
  for (const c of cases) assert.equal(telemetryWanted(c.config, c.env), c.want, c.name);
});

test('an exporter or protocol berth cannot use is a coded error naming the variable', async () => {
  const cases = [
    { env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, message: /OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported/ },
    { env: { OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' }, message: /OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=grpc/ },
    { env: { OTEL_TRACES_EXPORTER: 'zipkin' }, message: /OTEL_TRACES_EXPORTER=zipkin is not supported/ },
  ];
  for (const c of cases) {
    await assert.rejects(startTelemetry({}, '0.0.0', c.env), (err: Error & { code?: string }) => err.code === 'telemetry_unsupported' && c.message.test(err.message));
  }
});
