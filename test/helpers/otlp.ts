// An OTLP/HTTP receiver on loopback that decodes what OpenTelemetry exporters
// send, as protobuf (the default, http/protobuf) or JSON (http/json): spans
// and histogram points, flattened for assertions. The protobuf messages are
// the opentelemetry-proto v1 ones, the fields the assertions read, with their
// official numbers (opentelemetry/proto/{trace,metrics,common,resource}/v1).
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';

const OTLP = protobuf.Root.fromJSON({
  nested: {
    AnyValue: { oneofs: { value: { oneof: ['stringValue', 'boolValue', 'intValue', 'doubleValue'] } }, fields: { stringValue: { type: 'string', id: 1 }, boolValue: { type: 'bool', id: 2 }, intValue: { type: 'int64', id: 3 }, doubleValue: { type: 'double', id: 4 } } },
    KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
    Resource: { fields: { attributes: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
    Status: { fields: { message: { type: 'string', id: 2 }, code: { type: 'int32', id: 3 } } },
    Link: { fields: { traceId: { type: 'bytes', id: 1 }, spanId: { type: 'bytes', id: 2 } } },
    Span: {
      fields: {
        traceId: { type: 'bytes', id: 1 }, spanId: { type: 'bytes', id: 2 }, parentSpanId: { type: 'bytes', id: 4 }, name: { type: 'string', id: 5 }, kind: { type: 'int32', id: 6 },
        attributes: { rule: 'repeated', type: 'KeyValue', id: 9 }, links: { rule: 'repeated', type: 'Link', id: 13 }, status: { type: 'Status', id: 15 },
      },
    },
    ScopeSpans: { fields: { spans: { rule: 'repeated', type: 'Span', id: 2 } } },
    ResourceSpans: { fields: { resource: { type: 'Resource', id: 1 }, scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 } } },
    ExportTraceServiceRequest: { fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } } },
    HistogramDataPoint: { fields: { count: { type: 'fixed64', id: 4 }, explicitBounds: { rule: 'repeated', type: 'double', id: 7 }, attributes: { rule: 'repeated', type: 'KeyValue', id: 9 } } },
    Histogram: { fields: { dataPoints: { rule: 'repeated', type: 'HistogramDataPoint', id: 1 } } },
    Metric: { fields: { name: { type: 'string', id: 1 }, unit: { type: 'string', id: 3 }, histogram: { type: 'Histogram', id: 9 } } },
    ScopeMetrics: { fields: { metrics: { rule: 'repeated', type: 'Metric', id: 2 } } },
    ResourceMetrics: { fields: { scopeMetrics: { rule: 'repeated', type: 'ScopeMetrics', id: 2 } } },
    ExportMetricsServiceRequest: { fields: { resourceMetrics: { rule: 'repeated', type: 'ResourceMetrics', id: 1 } } },
  },
});

/** A protobuf request as the JSON encoding spells it: ids in hex, 64-bit numbers as strings. */
function decodeProtobuf(type: 'ExportTraceServiceRequest' | 'ExportMetricsServiceRequest', body: Buffer): Record<string, unknown[]> {
  const message = OTLP.lookupType(type);
  const hex = (b: unknown): string => (b instanceof Uint8Array ? Buffer.from(b).toString('hex') : '');
  const plain = message.toObject(message.decode(body), { longs: String, arrays: true, defaults: false }) as Record<string, unknown[]>;
  // protobufjs gives bytes as Uint8Array; OTLP/JSON gives trace and span ids as hex.
  for (const rs of (plain['resourceSpans'] ?? []) as { scopeSpans?: { spans?: Record<string, unknown>[] }[] }[]) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        for (const key of ['traceId', 'spanId', 'parentSpanId']) s[key] = hex(s[key]);
        s['links'] = ((s['links'] ?? []) as { traceId: unknown; spanId: unknown }[]).map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId) }));
      }
    }
  }
  return plain;
}

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
  /** Requests that were not OTLP: each a reason. */
  readonly rejected: string[];
  /** The content type of every request taken. */
  readonly encodings: string[];
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
  const encodings: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const type = req.headers['content-type'];
        const raw = Buffer.concat(chunks);
        const kind = req.url === '/v1/traces' ? 'ExportTraceServiceRequest' : req.url === '/v1/metrics' ? 'ExportMetricsServiceRequest' : undefined;
        if (kind === undefined) throw new Error(`path ${req.url ?? ''}`);
        if (type !== 'application/json' && type !== 'application/x-protobuf') throw new Error(`content-type ${type ?? 'none'}`);
        const body = type === 'application/json' ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown[]>) : decodeProtobuf(kind, raw);
        encodings.push(type);
        if (kind === 'ExportTraceServiceRequest') collectSpans(body, spans);
        else collectPoints(body, points);
        // An empty ExportServiceResponse is a valid answer in either encoding.
        if (type === 'application/json') res.writeHead(200, { 'content-type': type }).end('{}');
        else res.writeHead(200, { 'content-type': type }).end();
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
    encodings,
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
          status: { code: Number((s['status'] as { code?: number } | undefined)?.code ?? 0), ...((s['status'] as { message?: string } | undefined)?.message === undefined ? {} : { message: (s['status'] as { message: string }).message }) },
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
