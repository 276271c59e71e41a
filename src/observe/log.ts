import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };
export type LogFormat = 'json' | 'pretty';

/** Paths whose values never reach a log line. */
const REDACT = ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'env', 'token', 'secret', '*.token', '*.secret'];

/** The process logger: JSON lines for machines, `pretty` for people at a terminal. */
export function createLogger(options: { format?: LogFormat; level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env['BERTH_LOG_LEVEL'] ?? 'info';
  if (options.format === 'pretty') {
    return pino({ level, redact: REDACT, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino({ level, redact: REDACT, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, options.destination ?? process.stderr);
}

/** A logger that discards everything, for tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
