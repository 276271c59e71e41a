// Tracing a passed-through exchange: only while telemetry is on, berth reads
// the body it would otherwise stream, starts a SERVER and a CLIENT span per
// request in it, writes the CLIENT span's context into each request's
// `params._meta` (and the first one's into the HTTP headers), and watches the
// answer, JSON or SSE, for the responses that end the spans.
import type { IncomingMessage } from 'node:http';
import type { RequestContext } from '../../http/context.ts';
import { isRequest, isResponse } from '../../http/jsonrpc.ts';
import type { Request } from '../../http/jsonrpc.ts';
import type { Callee, Relay, Telemetry } from '../../observe/trace/telemetry.ts';
import { endRelay, failRelay } from '../../observe/trace/telemetry.ts';

export interface TracedBody {
  /** The body to send upstream, with each request's `_meta` rewritten. */
  readonly body: Buffer;
  /** Trace headers for the upstream request. */
  readonly headers: Readonly<Record<string, string>>;
  /** Watches the upstream's answer; ends every span by its response, or fails those left when it ends. */
  watch(answer: IncomingMessage, maxBytes: number): void;
  /** The exchange ended without an answer (refused, timed out, client gone). */
  fail(errorType: string, message: string): void;
}

/** Starts the spans of one POST body (a message or a batch). */
export function traceBody(tel: Telemetry, value: unknown, req: IncomingMessage, ctx: RequestContext, callee: Callee): TracedBody {
  const relays = new Map<string | number, Relay>();
  let headers: Readonly<Record<string, string>> = {};
  const rewrite = (message: unknown): unknown => {
    if (!isRequest(message)) return message;
    const session = req.headers['mcp-session-id'];
    const version = req.headers['mcp-protocol-version'];
    const received = tel.received(message, {
      server: callee.server,
      user: ctx.user,
      headers: req.headers,
      ...(typeof session === 'string' ? { sessionId: session } : {}),
      ...(typeof version === 'string' ? { protocolVersion: version } : {}),
      ...(req.socket.remoteAddress === undefined ? {} : { address: req.socket.remoteAddress }),
    });
    const sent = tel.send<Request>(message, received, { ...callee, ...(typeof version === 'string' ? { protocolVersion: version } : {}) });
    relays.set(message.id, { received, sent: sent.op });
    if (relays.size === 1) headers = tel.headersOf(sent.request) ?? {};
    return sent.request;
  };
  const rewritten = Array.isArray(value) ? value.map(rewrite) : rewrite(value);
  const failAll = (errorType: string, message: string): void => {
    for (const relay of relays.values()) failRelay(relay, errorType, message);
    relays.clear();
  };
  return {
    body: Buffer.from(JSON.stringify(rewritten)),
    headers,
    watch(answer, maxBytes) {
      if (relays.size === 0) return;
      const status = answer.statusCode ?? 0;
      if (status >= 400) return failAll(String(status), `HTTP ${status}`);
      const sse = answer.headers['content-type']?.startsWith('text/event-stream') === true;
      let text = '';
      const settle = (message: unknown): void => {
        if (!isResponse(message)) return;
        endRelay(relays.get(message.id), message);
        relays.delete(message.id);
      };
      answer.on('data', (chunk: Buffer) => {
        // Past the limit berth stops looking; what is left fails when the answer ends.
        if (text.length > maxBytes) return;
        text += chunk.toString('utf8');
        if (!sse) return;
        let end: number;
        while ((end = text.indexOf('\n\n')) >= 0) {
          settleEvent(text.slice(0, end), settle);
          text = text.slice(end + 2);
        }
      });
      answer.once('close', () => {
        if (!sse && text.length <= maxBytes) {
          const parsed = parseJson(text);
          for (const m of Array.isArray(parsed) ? parsed : [parsed]) settle(m);
        }
        failAll('no_response', 'the answer ended without a response');
      });
    },
    fail: failAll,
  };
}

/** One SSE event's `data:` lines, as the JSON-RPC message they carry. */
function settleEvent(event: string, settle: (message: unknown) => void): void {
  const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
  if (data !== '') settle(parseJson(data));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
