import type { IncomingMessage, ServerResponse } from 'node:http';

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
    if (!res.write(value)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
  }
  res.end();
}
