import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../../observe/log.ts';
import { SessionEventStore, streamOf } from './event-store.ts';
import type { Refusal } from '../../http/json-io.ts';
import { accepts, sendRpcError } from '../../http/json-io.ts';
import { exceedsQueue, MAX_QUEUED_BYTES } from '../../http/write-queue.ts';
import { EarliestTimer } from '../mux/earliest-timer.ts';
import type { RequestId } from '../../http/jsonrpc.ts';
import { ErrorCode, isRequest, isResponse } from '../../http/jsonrpc.ts';

// berth's session-era (2025-11-25 and earlier) streamable HTTP transport for
// one session. It answers a POST with one JSON body when the result is the
// first thing the upstream says about it, and switches to SSE only when a
// notification or server request comes first; no Request/Response objects,
// no per-message schema parse. Every SSE stream is bounded: a reader that
// does not keep up is cut off and may resume from the bounded history.

export interface SessionTransportOptions {
  readonly sessionId: string;
  readonly logger: Logger;
  /** Interval of keep-alive comments on SSE streams; a POST waiting this long turns into SSE to carry them. */
  readonly keepAliveMs: number;
  /** Bytes an SSE stream may have queued for its socket before it is closed; default MAX_QUEUED_BYTES. */
  readonly maxQueuedBytes?: number;
  readonly now?: () => number;
}

/** The SDK's limit, kept so both answer the same batch the same way. */
const MAX_BATCH = 100;
const STANDALONE = 'g';
const KEEP_ALIVE = ': keepalive\n\n';

/** The answer to one POST that carried requests. */
interface Exchange {
  /** The SSE stream id its events carry, for resumption. */
  readonly stream: string;
  /** The client's response; undefined once the client left. */
  res: ServerResponse | undefined;
  /** Set once the answer turned into an SSE stream. */
  sse: SseStream | undefined;
  /** Unanswered requests. */
  open: number;
  /** Results of a batch collected while one JSON array can still answer it. */
  readonly answers: JSONRPCMessage[] | undefined;
  /** When a JSON answer still waiting turns into SSE, so keep-alive comments can hold the connection. */
  readonly sseAt: number;
}

/** The messages of a POST body, or why they are not JSON-RPC. */
export function checkMessages(body: unknown): readonly JSONRPCMessage[] | Refusal {
  const messages = Array.isArray(body) ? (body as unknown[]) : [body];
  if (messages.length > MAX_BATCH) return { status: 400, code: ErrorCode.invalidRequest, message: `Invalid Request: Batch must not exceed ${MAX_BATCH} messages` };
  if (messages.length === 0 || !messages.every(isMessage)) return { status: 400, code: ErrorCode.parseError, message: 'Parse error: Invalid JSON-RPC message' };
  return messages as JSONRPCMessage[];
}

/** Shape only, as cheap as the forwarding needs: the upstream validates what it receives. */
function isMessage(m: unknown): boolean {
  if (typeof m !== 'object' || m === null || (m as { jsonrpc?: unknown }).jsonrpc !== '2.0') return false;
  if ('method' in m) return typeof m.method === 'string' && (!('id' in m) || isRequest(m));
  return isResponse(m) && (typeof m.id === 'string' || typeof m.id === 'number');
}

export function isInitialize(m: JSONRPCMessage): boolean {
  return 'method' in m && m.method === 'initialize' && 'id' in m;
}

export class SessionTransport implements Transport {
  readonly sessionId: string;
  onmessage?: Transport['onmessage'];
  onclose?: Transport['onclose'];
  onerror?: Transport['onerror'];
  readonly #o: SessionTransportOptions;
  readonly #maxQueued: number;
  /** Exchanges by the client's request id; ids are the client's own, unique within its session. */
  readonly #byRequest = new Map<RequestId, Exchange>();
  /** SSE exchanges by stream id, for a client resuming one; made on first use. */
  #resumable: Map<string, Exchange> | undefined;
  /** Made when the first SSE stream opens: before that no client holds an event id. */
  #events: SessionEventStore | undefined;
  #standalone: SseStream | undefined;
  #nextStream = 0;
  #closed = false;
  readonly #now: () => number;
  /** One timer for every waiting answer of the session; made by the first POST with a request. */
  #longWait: EarliestTimer | undefined;

  constructor(options: SessionTransportOptions) {
    this.#o = options;
    this.sessionId = options.sessionId;
    this.#maxQueued = options.maxQueuedBytes ?? MAX_QUEUED_BYTES;
    this.#now = options.now ?? Date.now;
  }

  async start(): Promise<void> {}

  /** A POST of this session with its checked messages (the session and its owner were checked by the caller). */
  handlePost(req: IncomingMessage, res: ServerResponse, messages: readonly JSONRPCMessage[], initializing = false): void {
    if (!initializing) {
      if (messages.some(isInitialize)) return sendRpcError(res, 400, ErrorCode.invalidRequest, 'Invalid Request: Server already initialized');
      if (this.#refuseVersion(req, res)) return;
    }
    // An id must name one request: answers are routed back by it, so a second one would wait forever.
    const ids = new Set<RequestId>();
    for (const m of messages) {
      if (!('method' in m && 'id' in m)) continue;
      if (ids.has(m.id) || this.#byRequest.has(m.id)) {
        const where = ids.has(m.id) ? 'twice in this batch' : 'by a request of this session still in flight';
        return sendRpcError(res, 400, ErrorCode.invalidRequest, `Invalid Request: request id ${JSON.stringify(m.id)} is used ${where}; give each request its own id`);
      }
      ids.add(m.id);
    }
    const requests = ids.size;
    // The request's headers go along: a traceparent there is the parent of spans whose message carries none.
    const extra = { requestInfo: { headers: req.headers } };
    if (requests === 0) {
      res.writeHead(202).end();
      for (const m of messages) this.onmessage?.(m, extra);
      return;
    }
    const sseAt = this.#now() + this.#o.keepAliveMs;
    const exchange: Exchange = { stream: String(++this.#nextStream), res, sse: undefined, open: requests, answers: requests > 1 ? [] : undefined, sseAt };
    for (const m of messages) if ('method' in m && 'id' in m) this.#byRequest.set(m.id, exchange);
    (this.#longWait ??= new EarliestTimer(this.#now, (now) => this.#longWaits(now))).atLatest(sseAt);
    res.once('close', () => this.#left(exchange, res));
    for (const m of messages) this.onmessage?.(m, extra);
  }

  /** GET: the session's standalone stream, or the resumption of a broken one (`Last-Event-ID`). */
  handleGet(req: IncomingMessage, res: ServerResponse): void {
    if (!accepts(req.headers.accept, 'text/event-stream')) return sendRpcError(res, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
    if (this.#refuseVersion(req, res)) return;
    const last = req.headers['last-event-id'];
    if (typeof last === 'string' && last !== '') return this.#resume(last, res);
    if (this.#standalone !== undefined) return sendRpcError(res, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
    this.#openStandalone(res);
  }

  /** DELETE: ends the session. */
  async handleDelete(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.#refuseVersion(req, res)) return;
    res.writeHead(200).end();
    await this.close();
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (this.#closed) return;
    const response = isResponse(message);
    const related = response ? message.id : options?.relatedRequestId;
    if (related === undefined) return this.#sendStandalone(message);
    const exchange = this.#byRequest.get(related);
    if (exchange === undefined) throw new Error(`no open request ${String(related)} in this session`);
    if (response) {
      this.#byRequest.delete(related);
      exchange.open--;
      if (exchange.sse === undefined && exchange.res !== undefined) {
        if (exchange.answers === undefined) return this.#finishJson(exchange, message);
        exchange.answers.push(message);
        if (exchange.open === 0) this.#finishJson(exchange, exchange.answers);
        return;
      }
    } else if (exchange.sse === undefined && exchange.res !== undefined) {
      this.#toSse(exchange);
    }
    this.#emit(exchange.stream, exchange.sse, message);
    if (exchange.open === 0) this.#finish(exchange);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#longWait?.stop();
    for (const exchange of new Set(this.#byRequest.values())) {
      if (exchange.sse !== undefined) exchange.sse.end();
      else if (exchange.res !== undefined) sendRpcError(exchange.res, 404, -32001, 'Session not found: it was closed');
    }
    this.#byRequest.clear();
    this.#resumable?.clear();
    this.#standalone?.end();
    this.#standalone = undefined;
    this.onclose?.();
  }

  #refuseVersion(req: IncomingMessage, res: ServerResponse): boolean {
    const version = req.headers['mcp-protocol-version'];
    if (version === undefined || (typeof version === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(version))) return false;
    sendRpcError(res, 400, -32000, `Bad Request: Unsupported protocol version: ${String(version)} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
    return true;
  }

  /** A long wait turns a JSON answer into SSE, so keep-alive comments can hold the connection; returns the next `sseAt`. */
  #longWaits(now: number): number {
    let next = Infinity;
    for (const exchange of new Set(this.#byRequest.values())) {
      if (exchange.res === undefined || exchange.sse !== undefined) continue;
      if (exchange.sseAt <= now) this.#toSse(exchange)?.write(KEEP_ALIVE);
      else next = Math.min(next, exchange.sseAt);
    }
    return next;
  }

  #finishJson(exchange: Exchange, body: JSONRPCMessage | JSONRPCMessage[]): void {
    const text = JSON.stringify(body);
    exchange.res?.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'mcp-session-id': this.sessionId }).end(text);
    exchange.res = undefined;
  }

  /** Turns a waiting answer into an SSE stream, sending the batch results collected so far first. */
  #toSse(exchange: Exchange): SseStream | undefined {
    if (exchange.res === undefined || exchange.sse !== undefined) return exchange.sse;
    this.#events ??= new SessionEventStore();
    (this.#resumable ??= new Map()).set(exchange.stream, exchange);
    exchange.sse = this.#sse(exchange.res);
    for (const answer of exchange.answers ?? []) this.#emit(exchange.stream, exchange.sse, answer);
    return exchange.sse;
  }

  /** Records a message on a stream (when a client can resume it) and writes it if the stream is connected. */
  #emit(stream: string, sse: SseStream | undefined, message: JSONRPCMessage): void {
    const data = JSON.stringify(message);
    const id = this.#events?.store(stream, data);
    sse?.write(frame(id, data));
  }

  #finish(exchange: Exchange): void {
    this.#resumable?.delete(exchange.stream);
    exchange.sse?.end();
    exchange.sse = undefined;
    exchange.res = undefined;
  }

  /** The client's connection of an exchange closed. */
  #left(exchange: Exchange, res: ServerResponse): void {
    if (exchange.res !== res) return; // answered, or already resumed elsewhere
    exchange.res = undefined;
    exchange.sse?.stop();
    exchange.sse = undefined;
    if (this.#resumable?.get(exchange.stream) === exchange) return; // its events are kept; a resume re-attaches
    // Never told an event id, the client cannot come back for the answer.
    for (const [id, e] of this.#byRequest) if (e === exchange) this.#byRequest.delete(id);
  }

  #sendStandalone(message: JSONRPCMessage): void {
    if (isResponse(message)) throw new Error('a response needs the request it answers');
    this.#emit(STANDALONE, this.#standalone, message);
  }

  #openStandalone(res: ServerResponse): SseStream {
    this.#events ??= new SessionEventStore();
    const sse = this.#sse(res);
    this.#standalone = sse;
    res.once('close', () => {
      if (this.#standalone !== sse) return;
      sse.stop();
      this.#standalone = undefined;
    });
    return sse;
  }

  #resume(lastEventId: string, res: ServerResponse): void {
    const stream = streamOf(lastEventId);
    if (stream === undefined) return sendRpcError(res, 400, -32000, 'Invalid event ID format');
    const exchange = this.#resumable?.get(stream);
    const busy = stream === STANDALONE ? this.#standalone !== undefined : exchange?.res !== undefined;
    if (busy) return sendRpcError(res, 409, -32000, 'Conflict: Stream already has an active connection');
    const missed = this.#events?.after(lastEventId) ?? [];
    if (stream === STANDALONE) {
      const sse = this.#openStandalone(res);
      for (const e of missed) sse.write(frame(e.id, e.data));
      return;
    }
    const sse = this.#sse(res);
    for (const e of missed) sse.write(frame(e.id, e.data));
    if (exchange === undefined) return sse.end(); // everything it had to say was replayed
    exchange.res = res;
    exchange.sse = sse;
    res.once('close', () => this.#left(exchange, res));
  }

  #sse(res: ServerResponse): SseStream {
    return new SseStream(res, this.sessionId, this.#o.keepAliveMs, this.#maxQueued, this.#o.logger);
  }
}

function frame(id: string | undefined, data: string): string {
  return id === undefined ? `event: message\ndata: ${data}\n\n` : `event: message\nid: ${id}\ndata: ${data}\n\n`;
}

/**
 * One SSE response. The bytes Node holds for a slow socket are its queue;
 * past the limit the stream is destroyed instead of growing, and the client
 * can resume from the session's bounded history.
 */
class SseStream {
  readonly #res: ServerResponse;
  readonly #limit: number;
  readonly #log: Logger;
  readonly #keepAlive: NodeJS.Timeout;
  #open = true;

  constructor(res: ServerResponse, sessionId: string, keepAliveMs: number, limit: number, log: Logger) {
    this.#res = res;
    this.#limit = limit;
    this.#log = log;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', 'mcp-session-id': sessionId });
    res.flushHeaders();
    this.#keepAlive = setInterval(() => this.write(KEEP_ALIVE), keepAliveMs).unref();
  }

  write(chunk: string): void {
    if (!this.#open) return;
    if (!this.#res.write(chunk) && exceedsQueue(this.#res, this.#log, this.#limit)) this.stop();
  }

  end(): void {
    if (!this.#open) return;
    this.stop();
    this.#res.end();
  }

  /** Stops writing (the client left or the stream ended). */
  stop(): void {
    this.#open = false;
    clearInterval(this.#keepAlive);
  }
}
