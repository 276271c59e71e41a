import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observe/log.ts';

/**
 * Bytes a response may hold for a client that is not reading (beyond what the
 * kernel's socket buffer took) before berth closes the stream.
 */
export const MAX_QUEUED_BYTES = 1024 * 1024;

/** The request headers the MCP transport reads; copying only these keeps the hot path short. */
const TRANSPORT_HEADERS = ['accept', 'content-type', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'host', 'origin'] as const;

/**
 * Runs a web-standard handler (the SDK's streamable HTTP transport) on a Node
 * request. Thinner than the SDK's own Node wrapper: the body was already read
 * and parsed by berth, and the response streams chunk by chunk with no timer
 * between the headers and the first event.
 */
export async function serveWebStandard(
  req: IncomingMessage,
  res: ServerResponse,
  log: Logger,
  handler: (request: Request) => Promise<Response>,
): Promise<void> {
  const headers = new Headers();
  for (const name of TRANSPORT_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') headers.set(name, value);
  }
  const request = new Request(`http://berth${req.url ?? '/'}`, { method: req.method ?? 'GET', headers });
  const response = await handler(request);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (response.body === null) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  // A client that goes away cancels the stream, which lets the transport forget it.
  res.once('close', () => void reader.cancel().catch(() => undefined));
  if (response.headers.get('content-type')?.startsWith('text/event-stream') === true) res.flushHeaders();
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
    if (done) break;
    // The transport enqueues without backpressure, so waiting for 'drain' would
    // only move the pile into its queue. Instead the bytes the socket has not
    // taken are counted, and a stream that falls this far behind is closed; the
    // session's event store keeps recent events for a resume (Last-Event-ID).
    if (exceedsQueue(res, log)) return;
    res.write(value);
  }
  res.end();
}

/** True (and the response destroyed, with a log line) when a client has left more than MAX_QUEUED_BYTES unread. */
export function exceedsQueue(res: ServerResponse, log: Logger): boolean {
  if (res.writableLength <= MAX_QUEUED_BYTES) return false;
  log.warn({ queuedBytes: res.writableLength, limit: MAX_QUEUED_BYTES }, 'stream closed: the client is not reading it');
  res.destroy();
  return true;
}
