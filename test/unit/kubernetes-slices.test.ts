// Which pods berth routes to, read from EndpointSlices: table-driven, one
// case per rule, each with the slice it is about.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Endpoint, V1EndpointSlice } from '@kubernetes/client-node';
import { placementOf, readyEndpoints, transportOf } from '../../src/backends/kubernetes/slices.ts';

type Endpoint = V1Endpoint;
const pod = (name: string, conditions: Endpoint['conditions'] = { ready: true }, address = '10.0.0.1'): Endpoint => ({ addresses: [address], conditions, targetRef: { kind: 'Pod', name } });
const slice = (endpoints: Endpoint[], port = 8080, portName = 'mcp'): V1EndpointSlice => ({ addressType: 'IPv4', endpoints, ports: [{ name: portName, port, protocol: 'TCP' }] });

const cases: { name: string; slices: V1EndpointSlice[]; want: string[] }[] = [
  { name: 'a ready pod is routed, on the slice\'s mcp port', slices: [slice([pod('a')], 9000)], want: ['a@10.0.0.1:9000'] },
  { name: 'ready unset counts as ready, as the API says consumers should read it', slices: [slice([pod('a', {})])], want: ['a@10.0.0.1:8080'] },
  { name: 'a pod not ready is left out', slices: [slice([pod('a', { ready: false }), pod('b')])], want: ['b@10.0.0.1:8080'] },
  { name: 'a terminating pod is left out, even while it still serves', slices: [slice([pod('a', { ready: true, serving: true, terminating: true })])], want: [] },
  { name: 'an endpoint that is not a pod is left out', slices: [slice([{ addresses: ['10.0.0.9'], conditions: { ready: true } }])], want: [] },
  { name: 'a slice without an mcp port routes nothing', slices: [slice([pod('a')], 8080, 'metrics')], want: [] },
  { name: 'slices grouped by port each give their own port; sorted by pod', slices: [slice([pod('b')], 9001), slice([pod('a')], 9000)], want: ['a@10.0.0.1:9000', 'b@10.0.0.1:9001'] },
  { name: 'an IPv6 address is bracketed', slices: [slice([pod('a', { ready: true }, 'fd00::1')])], want: ['a@[fd00::1]:8080'] },
];

for (const c of cases) {
  test(`readyEndpoints: ${c.name}`, () => {
    assert.deepEqual(readyEndpoints(c.slices).map((e) => `${e.pod}@${e.host}:${e.port}`), c.want);
  });
}

test('transportOf: path and transport from the pod\'s annotations, streamable HTTP at /mcp by default', () => {
  const endpoint = { pod: 'a', host: '10.0.0.1', port: 8080 };
  assert.deepEqual(transportOf({ metadata: {} }, endpoint), { kind: 'http', transport: 'streamable-http', url: 'http://10.0.0.1:8080/mcp', headers: {} });
  const annotated = { metadata: { annotations: { 'berth.dev/mcp-path': '/sse', 'berth.dev/mcp-transport': 'sse' } } };
  assert.deepEqual(transportOf(annotated, endpoint), { kind: 'http', transport: 'sse', url: 'http://10.0.0.1:8080/sse', headers: {} });
});

test('placementOf: the Service labels copied onto a slice name its unit and user; other slices are not berth\'s', () => {
  const labels = { 'kubernetes.io/service-name': 'berth-gh-abc', 'berth.dev/server': 'gh', 'berth.dev/user': 'abc' };
  assert.deepEqual(placementOf({ ...slice([]), metadata: { labels } }), { service: 'berth-gh-abc', unit: 'gh', userHash: 'abc' });
  assert.deepEqual(placementOf({ ...slice([]), metadata: { labels: { 'kubernetes.io/service-name': 'berth-s', 'berth.dev/server': 's' } } }), { service: 'berth-s', unit: 's' });
  assert.equal(placementOf({ ...slice([]), metadata: { labels: { 'kubernetes.io/service-name': 'other' } } }), undefined);
});
