// The OpenTelemetry side of berth's telemetry: spans and histograms by the MCP
// conventions over the OTel JS SDK 2.x. Loaded only when telemetry is on.
import { createHmac, randomBytes } from 'node:crypto';
import type { Attributes as OtelAttributes, Context, Histogram, Link, Span, TextMapGetter, TextMapPropagator, Tracer } from '@opentelemetry/api';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import type { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { ATTR, DURATION_BUCKETS, METRIC } from './attributes.ts';
import type { Attributes, Outcome } from './message.ts';
import { describeRequest, metaCarrier, outcomeOf, withMeta } from './message.ts';
import type { Callee, Caller, Operation, Telemetry, TracedRequest } from './telemetry.ts';

export interface SdkTelemetryOptions {
  readonly tracerProvider?: BasicTracerProvider;
  readonly meterProvider?: MeterProvider;
  /** Servers whose tool arguments and results are recorded. */
  readonly capture: ReadonlySet<string>;
  readonly userHashKey?: string;
  readonly version: string;
}

const getter: TextMapGetter<Readonly<Record<string, string | string[] | undefined>>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};
/** Pseudonyms kept per user name; past this the memo starts over. */
const MAX_PSEUDONYMS = 10_000;

/** A span and its duration histogram, ended once. */
class SpanOperation implements Operation {
  readonly context: Context;
  readonly #span: Span;
  readonly #side: 'server' | 'client';
  readonly #histogram: Histogram;
  readonly #metric: Attributes;
  readonly #started = performance.now();
  readonly #capture: boolean;
  #ended = false;

  constructor(span: Span, parent: Context, side: 'server' | 'client', histogram: Histogram, metric: Attributes, capture: boolean) {
    this.#span = span;
    this.context = trace.setSpan(parent, span);
    this.#side = side;
    this.#histogram = histogram;
    this.#metric = metric;
    this.#capture = capture;
  }

  end(response: unknown): void {
    this.#finish(outcomeOf(response, this.#side));
  }

  fail(errorType: string, message: string): void {
    this.#finish({ errorType, error: true, message });
  }

  #finish(outcome: Outcome): void {
    if (this.#ended) return;
    this.#ended = true;
    const span = this.#span;
    const metric: Attributes = { ...this.#metric };
    if (outcome.statusCode !== undefined) metric[ATTR.rpcResponseStatusCode] = outcome.statusCode;
    if (outcome.errorType !== undefined) metric[ATTR.errorType] = outcome.errorType;
    if (span.isRecording()) {
      span.setAttributes(metric);
      if (outcome.error) span.setStatus({ code: SpanStatusCode.ERROR, ...(outcome.message === undefined ? {} : { message: outcome.message }) });
      if (this.#capture && outcome.result !== undefined && this.#metric[ATTR.genAiOperationName] !== undefined) span.setAttribute(ATTR.genAiToolCallResult, JSON.stringify(outcome.result));
    }
    span.end();
    this.#histogram.record((performance.now() - this.#started) / 1000, metric);
  }
}

export class SdkTelemetry implements Telemetry {
  readonly on = true;
  readonly #tracer: Tracer;
  readonly #propagator: TextMapPropagator = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] });
  readonly #o: SdkTelemetryOptions;
  readonly #histograms: Record<'serverOp' | 'clientOp' | 'serverSession' | 'clientSession', Histogram>;
  readonly #hashKey: string | Buffer;
  readonly #pseudonyms = new Map<string, string>();

  constructor(options: SdkTelemetryOptions) {
    this.#o = options;
    this.#tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer('berth', options.version);
    const meter = options.meterProvider?.getMeter('berth', options.version);
    const histogram = (name: string, description: string): Histogram =>
      meter?.createHistogram(name, { unit: 's', description, advice: { explicitBucketBoundaries: [...DURATION_BUCKETS] } }) ?? NO_HISTOGRAM;
    this.#histograms = {
      serverOp: histogram(METRIC.serverOperationDuration, 'MCP request duration as observed by berth from receiving it to sending the result'),
      clientOp: histogram(METRIC.clientOperationDuration, 'MCP request duration as observed by berth from sending it to receiving the result'),
      serverSession: histogram(METRIC.serverSessionDuration, 'Duration of a client\'s MCP session with berth'),
      clientSession: histogram(METRIC.clientSessionDuration, 'Duration of berth\'s MCP session with an upstream'),
    };
    this.#hashKey = options.userHashKey ?? randomBytes(32);
  }

  received(request: TracedRequest, caller: Caller): Operation {
    const { name, attributes, metric } = describeRequest(request);
    const meta = metaCarrier(request.params);
    const header = typeof caller.headers?.['traceparent'] === 'string' ? this.#propagator.extract(ROOT_CONTEXT, caller.headers, getter) : undefined;
    // The conventions: the `_meta` context is the parent; the transport's own, when different, a link.
    const parent = meta === undefined ? (header ?? ROOT_CONTEXT) : this.#propagator.extract(ROOT_CONTEXT, meta, getter);
    const headerSpan = meta === undefined || header === undefined ? undefined : trace.getSpanContext(header);
    const links: Link[] = headerSpan !== undefined && headerSpan.spanId !== trace.getSpanContext(parent)?.spanId ? [{ context: headerSpan }] : [];
    const transport = caller.transport ?? 'tcp';
    const common: Attributes = { [ATTR.networkTransport]: transport, [ATTR.berthServer]: caller.server };
    if (caller.protocolVersion !== undefined) common[ATTR.mcpProtocolVersion] = caller.protocolVersion;
    const spanAttributes: Attributes = { ...attributes, ...common };
    if (caller.sessionId !== undefined) spanAttributes[ATTR.mcpSessionId] = caller.sessionId;
    if (caller.address !== undefined) spanAttributes[ATTR.clientAddress] = caller.address;
    if (caller.user !== undefined) spanAttributes[ATTR.berthUserHash] = this.#pseudonym(caller.user);
    const capture = this.#capture(caller.server, request, spanAttributes);
    const span = this.#tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: spanAttributes as OtelAttributes, links }, parent);
    return new SpanOperation(span, parent, 'server', this.#histograms.serverOp, { ...metric, ...common }, capture);
  }

  send<R extends TracedRequest>(request: R, parent: Operation | undefined, callee: Callee): { request: R; op: Operation } {
    const { name, attributes, metric } = describeRequest(request);
    const parentContext = parent instanceof SpanOperation ? parent.context : ROOT_CONTEXT;
    const common: Attributes = { [ATTR.networkTransport]: callee.transport, [ATTR.berthServer]: callee.server };
    if (callee.protocolVersion !== undefined) common[ATTR.mcpProtocolVersion] = callee.protocolVersion;
    if (callee.address !== undefined) common[ATTR.serverAddress] = callee.address;
    if (callee.port !== undefined) common[ATTR.serverPort] = callee.port;
    const spanAttributes: Attributes = { ...attributes, ...common };
    if (callee.sessionId !== undefined) spanAttributes[ATTR.mcpSessionId] = callee.sessionId;
    if (callee.backend !== undefined) spanAttributes[ATTR.berthBackend] = callee.backend;
    if (callee.instance !== undefined) spanAttributes[ATTR.berthInstance] = callee.instance;
    const capture = this.#capture(callee.server, request, spanAttributes);
    const span = this.#tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes: spanAttributes as OtelAttributes }, parentContext);
    const op = new SpanOperation(span, parentContext, 'client', this.#histograms.clientOp, { ...metric, ...common }, capture);
    const carrier: Record<string, string> = {};
    this.#propagator.inject(op.context, carrier, { set: (c, key, value) => void (c[key] = value) });
    return { request: { ...request, params: withMeta(request.params, carrier) }, op };
  }

  sessionEnded(side: 'server' | 'client', startedAt: number, attrs: { readonly protocolVersion?: string; readonly transport: 'tcp' | 'pipe' | 'inproc'; readonly errorType?: string; readonly address?: string; readonly port?: number }): void {
    const metric: Attributes = { [ATTR.networkTransport]: attrs.transport };
    if (attrs.protocolVersion !== undefined) metric[ATTR.mcpProtocolVersion] = attrs.protocolVersion;
    if (attrs.errorType !== undefined) metric[ATTR.errorType] = attrs.errorType;
    if (side === 'client' && attrs.address !== undefined) metric[ATTR.serverAddress] = attrs.address;
    if (side === 'client' && attrs.port !== undefined) metric[ATTR.serverPort] = attrs.port;
    (side === 'server' ? this.#histograms.serverSession : this.#histograms.clientSession).record(Math.max(0, Date.now() - startedAt) / 1000, metric);
  }

  headersOf(message: unknown): Readonly<Record<string, string>> | undefined {
    return metaCarrier((message as { params?: Record<string, unknown> }).params);
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([this.#o.tracerProvider?.shutdown(), this.#o.meterProvider?.shutdown()]);
  }

  /** Records a tool call's arguments on servers opted in; says whether its result is recorded too. */
  #capture(server: string, request: TracedRequest, attributes: Attributes): boolean {
    if (!this.#o.capture.has(server) || request.method !== 'tools/call') return false;
    attributes[ATTR.genAiToolCallArguments] = JSON.stringify(request.params?.['arguments'] ?? {});
    return true;
  }

  #pseudonym(user: string): string {
    let hash = this.#pseudonyms.get(user);
    if (hash === undefined) {
      if (this.#pseudonyms.size >= MAX_PSEUDONYMS) this.#pseudonyms.clear();
      hash = createHmac('sha256', this.#hashKey).update(user).digest('hex').slice(0, 16);
      this.#pseudonyms.set(user, hash);
    }
    return hash;
  }
}

const NO_HISTOGRAM: Histogram = { record: () => undefined };
