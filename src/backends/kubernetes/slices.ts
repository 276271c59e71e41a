// Where a placement's pods can be reached, as the cluster itself routes: the
// ready endpoints of its Service's EndpointSlices. A Service alone would
// spread one MCP session's requests over every pod; berth reads the slices
// and picks a pod per session itself. Pure: objects in, addresses out.
import type { V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import type { HttpTransport } from '../backend.ts';
import { ANNOTATIONS, LABELS } from '../labels.ts';

/** Set by the EndpointSlice controller on every slice of a Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface SliceEndpoint {
  readonly pod: string;
  readonly host: string;
  readonly port: number;
}

/**
 * The pods a Service routes to now: endpoints that are ready (unset counts as
 * ready, as the API says consumers should read it) and not terminating, on
 * the slice's `mcp` port. The controller groups endpoints by port, so each
 * slice carries its own.
 */
export function readyEndpoints(slices: Iterable<V1EndpointSlice>): SliceEndpoint[] {
  const ready: SliceEndpoint[] = [];
  for (const slice of slices) {
    const port = slice.ports?.find((p) => p.name === 'mcp')?.port;
    if (port === undefined) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const pod = endpoint.targetRef?.kind === 'Pod' ? endpoint.targetRef.name : undefined;
      const address = endpoint.addresses[0];
      if (pod === undefined || address === undefined || endpoint.conditions?.ready === false || endpoint.conditions?.terminating === true) continue;
      ready.push({ pod, host: address.includes(':') ? `[${address}]` : address, port });
    }
  }
  return ready.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
}

/** How to reach one endpoint: the path and transport come from the pod's annotations. */
export function transportOf(pod: V1Pod, endpoint: SliceEndpoint): HttpTransport {
  const annotations = pod.metadata?.annotations ?? {};
  return {
    kind: 'http',
    transport: annotations[ANNOTATIONS.transport] === 'sse' ? 'sse' : 'streamable-http',
    url: `http://${endpoint.host}:${endpoint.port}${annotations[ANNOTATIONS.path] ?? '/mcp'}`,
    headers: {},
  };
}

/** The placement a slice routes to, from the Service labels the controller copies onto it. */
export function placementOf(slice: V1EndpointSlice): { readonly service: string; readonly unit: string; readonly userHash?: string } | undefined {
  const labels = slice.metadata?.labels ?? {};
  const service = labels[SERVICE_NAME_LABEL];
  const unit = labels[LABELS.server];
  if (service === undefined || unit === undefined) return undefined;
  const userHash = labels[LABELS.user];
  return { service, unit, ...(userHash === undefined ? {} : { userHash }) };
}
