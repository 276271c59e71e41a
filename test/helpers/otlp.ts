// An OTLP/HTTP receiver on loopback that decodes what OpenTelemetry exporters
// send as OTLP/JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json): spans and
// histogram points, flattened for assertions.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP's SpanKind: 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message?: string };
  readonly links: readonly { readonly traceId: string; readonly spanId: string }[];
  readonly resource: Readonly<Record<string, unknown>>;
}

export interface ReceivedPoint {
  readonly metric: string;
  readonly unit: string;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly count: number;
  readonly explicitBounds: readonly number[];
}

export interface OtlpReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  readonly points: ReceivedPoint[];
  /** Requests that were not OTLP/JSON: each a reason. */
  readonly rejected: string[];
  close(): Promise<void>;
}

interface KeyValue {
  key: string;
  value: Record<string, unknown>;
}

function valueOf(v: Record<string, unknown>): unknown {
  if ('stringValue' in v) return v['stringValue'];
  if ('intValue' in v) return Number(v['intValue']);
  if ('doubleValue' in v) return v['doubleValue'];
  if ('boolValue' in v) return v['boolValue'];
  return v;
}

function attributesOf(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, valueOf(kv.value)]));
}

/** Starts the receiver on 127.0.0.1; point OTEL_EXPORTER_OTLP_ENDPOINT at `url`. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const points: ReceivedPoint[] = [];
  const rejected: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        if (req.headers['content-type'] !== 'application/json') throw new Error(`content-type ${req.headers['content-type'] ?? 'none'}`);
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown[]>;
        if (req.url === '/v1/traces') collectSpans(body, spans);
        else if (req.url === '/v1/metrics') collectPoints(body, points);
        else throw new Error(`path ${req.url ?? ''}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch (err) {
        rejected.push((err as Error).message);
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    points,
    rejected,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function collectSpans(body: Record<string, unknown[]>, into: ReceivedSpan[]): void {
  for (const rs of (body['resourceSpans'] ?? []) as { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: Record<string, unknown>[] }[] }[]) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        into.push({
          traceId: String(s['traceId']),
          spanId: String(s['spanId']),
          parentSpanId: String(s['parentSpanId'] ?? ''),
          name: String(s['name']),
          kind: Number(s['kind']),
          attributes: attributesOf(s['attributes'] as KeyValue[]),
          status: (s['status'] as { code: number; message?: string } | undefined) ?? { code: 0 },
          links: ((s['links'] ?? []) as { traceId: string; spanId: string }[]).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
          resource,
        });
      }
    }
  }
}

function collectPoints(body: Record<string, unknown[]>, into: ReceivedPoint[]): void {
  for (const rm of (body['resourceMetrics'] ?? []) as { scopeMetrics?: { metrics?: Record<string, unknown>[] }[] }[]) {
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        const histogram = m['histogram'] as { dataPoints?: Record<string, unknown>[] } | undefined;
        for (const p of histogram?.dataPoints ?? []) {
          into.push({
            metric: String(m['name']),
            unit: String(m['unit'] ?? ''),
            attributes: attributesOf(p['attributes'] as KeyValue[]),
            count: Number(p['count']),
            explicitBounds: (p['explicitBounds'] as number[] | undefined) ?? [],
          });
        }
      }
    }
  }
}
