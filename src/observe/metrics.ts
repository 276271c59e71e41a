import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** berth's Prometheus metrics, one registry per process (tests make their own). */
export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'server' | 'method' | 'status'>;
  readonly latency: Histogram<'server' | 'method'>;
  readonly sessions: Gauge<'server'>;
  readonly sessionsEvicted: Counter<'reason'>;
  readonly instances: Gauge<'server' | 'state'>;
  readonly restarts: Gauge<'server'>;
  readonly reloads: Counter<'result'>;
  readonly generation: Gauge;
}

/** Live numbers read at scrape time rather than tracked on every change. */
export interface MetricSources {
  sessionsByServer(): ReadonlyMap<string, number>;
  instances(): readonly { readonly unit: string; readonly state: string; readonly restarts: number }[];
}

export function createMetrics(options: { defaults?: boolean; sources?: () => MetricSources | undefined } = {}): Metrics {
  const registry = new Registry();
  const sources = options.sources ?? (() => undefined);
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, prefix: 'berth_process_' });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: 'berth_requests_total', help: 'HTTP requests to MCP routes by server, JSON-RPC method and status', labelNames: ['server', 'method', 'status'], registers }),
    latency: new Histogram({
      name: 'berth_request_duration_seconds',
      help: 'Time to the end of the response, by server and JSON-RPC method',
      labelNames: ['server', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    sessions: new Gauge({
      name: 'berth_sessions',
      help: 'Open client sessions by server',
      labelNames: ['server'],
      registers,
      collect() {
        this.reset();
        for (const [server, n] of sources()?.sessionsByServer() ?? []) this.set({ server }, n);
      },
    }),
    sessionsEvicted: new Counter({
      name: 'berth_sessions_evicted_total',
      help: 'Client sessions closed by berth rather than the client, by reason (idle, client-limit, total-limit)',
      labelNames: ['reason'],
      registers,
    }),
    instances: new Gauge({
      name: 'berth_instances',
      help: 'Running server instances by server and state',
      labelNames: ['server', 'state'],
      registers,
      collect() {
        this.reset();
        for (const i of sources()?.instances() ?? []) this.inc({ server: i.unit, state: i.state });
      },
    }),
    restarts: new Gauge({
      name: 'berth_instance_restarts',
      help: 'Restarts of current instances by server',
      labelNames: ['server'],
      registers,
      collect() {
        this.reset();
        for (const i of sources()?.instances() ?? []) this.inc({ server: i.unit }, i.restarts);
      },
    }),
    reloads: new Counter({ name: 'berth_reloads_total', help: 'Config reloads by result (applied, rejected, failed)', labelNames: ['result'], registers }),
    generation: new Gauge({ name: 'berth_config_generation', help: 'Generation of the config being served', registers }),
  };
}
