// Turns telemetry on when the file or the environment asks for it. The SDK
// and the exporters are imported here, dynamically, and only then: with
// telemetry off berth loads no OpenTelemetry code at all.
import { BerthError } from '../../errors.ts';
import type { Telemetry } from './telemetry.ts';

/** The `telemetry:` block of berth.yaml. */
export interface TelemetryConfig {
  readonly enabled?: boolean;
  readonly sampling?: number;
  readonly capture?: readonly string[];
  readonly userHashKey?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const ENDPOINTS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT'];
const PROTOCOLS = ['http/protobuf', 'http/json'] as const;
type Protocol = (typeof PROTOCOLS)[number];

/** Whether telemetry is on: OTEL_SDK_DISABLED wins, then the file's block, then whether an OTLP endpoint is set. */
export function telemetryWanted(config: TelemetryConfig | undefined, env: Env = process.env): boolean {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return false;
  if (config !== undefined) return config.enabled !== false;
  return ENDPOINTS.some((name) => (env[name] ?? '') !== '');
}

/** The telemetry berth runs with: off (nothing loaded), or the SDK with OTLP exporters configured by OTEL_* variables. */
export async function startTelemetry(config: TelemetryConfig | undefined, version: string, env: Env = process.env): Promise<Telemetry | undefined> {
  if (!telemetryWanted(config, env)) return undefined;
  const traces = exporterOf('traces', env);
  const metrics = exporterOf('metrics', env);
  const [{ SdkTelemetry }, resource] = await Promise.all([import('./sdk.ts'), resourceOf(version)]);
  const tracerProvider = traces === undefined ? undefined : await tracerProviderOf(traces, resource, config?.sampling, env);
  const meterProvider = metrics === undefined ? undefined : await meterProviderOf(metrics, resource, env);
  return new SdkTelemetry({
    ...(tracerProvider === undefined ? {} : { tracerProvider }),
    ...(meterProvider === undefined ? {} : { meterProvider }),
    capture: new Set(config?.capture ?? []),
    ...(config?.userHashKey === undefined ? {} : { userHashKey: config.userHashKey }),
    version,
  });
}

/** The OTLP protocol of one signal, or undefined when its exporter is `none`. Only OTLP over HTTP is built in. */
function exporterOf(signal: 'traces' | 'metrics', env: Env): Protocol | undefined {
  const exporterVar = `OTEL_${signal.toUpperCase()}_EXPORTER`;
  const exporter = (env[exporterVar] ?? 'otlp').trim() || 'otlp';
  if (exporter === 'none') return undefined;
  if (exporter !== 'otlp') throw new BerthError('telemetry_unsupported', `${exporterVar}=${exporter} is not supported (berth exports over OTLP: use otlp, or none to turn ${signal} off)`);
  const protocolVar = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_PROTOCOL`;
  const name = env[protocolVar] !== undefined && env[protocolVar] !== '' ? protocolVar : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = (env[name] ?? 'http/protobuf').trim() || 'http/protobuf';
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) throw new BerthError('telemetry_unsupported', `${name}=${protocol} is not supported (use http/protobuf or http/json; for gRPC run a collector beside berth)`);
  return protocol as Protocol;
}

async function resourceOf(version: string) {
  const { defaultResource, detectResources, envDetector, resourceFromAttributes } = await import('@opentelemetry/resources');
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the env detector) override berth's defaults.
  return defaultResource().merge(resourceFromAttributes({ 'service.name': 'berth', 'service.version': version })).merge(detectResources({ detectors: [envDetector] }));
}

type Resource = Awaited<ReturnType<typeof resourceOf>>;

async function tracerProviderOf(protocol: Protocol, resource: Resource, sampling: number | undefined, env: Env) {
  const { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } = await import('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } = protocol === 'http/json' ? await import('@opentelemetry/exporter-trace-otlp-http') : await import('@opentelemetry/exporter-trace-otlp-proto');
  // Without OTEL_TRACES_SAMPLER the file's ratio applies; the SDK reads the variable itself otherwise.
  const sampler = sampling === undefined || (env['OTEL_TRACES_SAMPLER'] ?? '') !== '' ? {} : { sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(sampling) }) };
  return new BasicTracerProvider({ resource, ...sampler, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
}

async function meterProviderOf(protocol: Protocol, resource: Resource, env: Env) {
  const { MeterProvider, PeriodicExportingMetricReader } = await import('@opentelemetry/sdk-metrics');
  const { OTLPMetricExporter } = protocol === 'http/json' ? await import('@opentelemetry/exporter-metrics-otlp-http') : await import('@opentelemetry/exporter-metrics-otlp-proto');
  const interval = Number(env['OTEL_METRIC_EXPORT_INTERVAL'] ?? '') || 60_000;
  return new MeterProvider({ resource, readers: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: interval, exportTimeoutMillis: Math.min(30_000, interval) })] });
}
