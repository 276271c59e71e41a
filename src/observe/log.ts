import pino from 'pino';
import type { Logger } from 'pino';
import { redactUrls } from './redact.ts';

export type { Logger };
export type LogFormat = 'json' | 'pretty';

/** Paths whose values never reach a log line. */
const REDACT = ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'env', 'token', 'secret', '*.token', '*.secret'];

/**
 * URL credentials out of every field of a log line: a reason or an error
 * quoting an upstream's URL (`http://user:pass@host/?token=…`) is logged
 * with them redacted, wherever it was logged from.
 */
const hooks: pino.LoggerOptions['hooks'] = {
  logMethod(args, method) {
    const [first, ...rest] = args as unknown[];
    const fields = first !== null && typeof first === 'object' && !(first instanceof Error) ? redactFields(first as Record<string, unknown>) : typeof first === 'string' ? redactUrls(first) : first instanceof Error ? errorFields(first) : first;
    method.apply(this, [fields, ...rest] as Parameters<typeof method>);
  },
};

function redactFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[key] = typeof value === 'string' ? redactUrls(value) : value instanceof Error ? errorFields(value) : value;
  return out;
}

/** What pino's err serializer would log of an error, redacted. */
function errorFields(err: Error): Record<string, unknown> {
  return { type: err.name, message: redactUrls(err.message), ...(err.stack === undefined ? {} : { stack: redactUrls(err.stack) }), ...((err as { code?: unknown }).code === undefined ? {} : { code: (err as { code?: unknown }).code }) };
}

/** The process logger: JSON lines for machines, `pretty` for people at a terminal. */
export function createLogger(options: { format?: LogFormat; level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env['BERTH_LOG_LEVEL'] ?? 'info';
  if (options.format === 'pretty') {
    return pino({ level, redact: REDACT, hooks, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino({ level, redact: REDACT, hooks, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, options.destination ?? process.stderr);
}

/** A logger that discards everything, for tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
