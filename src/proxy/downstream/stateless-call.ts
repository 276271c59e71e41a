import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { writeJson } from '../../http/json-io.ts';
import type { Request, RequestId, Response } from '../../http/jsonrpc.ts';
import { isNotification, isRequest, isResponse } from '../../http/jsonrpc.ts';
import type { Multiplexer, SessionPeer } from '../mux/multiplex.ts';
import { MAX_QUEUED_BYTES } from '../../http/write-queue.ts';

/** How long a call waiting for the client's input is kept. */
const PARK_TTL_MS = 5 * 60_000;
/** Calls waiting for input at once; past this the oldest is abandoned. */
const MAX_PARKED = 1_000;

const parked = new Map<string, { call: StatelessCall; owner: string; expires: number }>();

/**
 * One stateless (2026-07-28) request forwarded to a session-era upstream,
 * possibly over several HTTP rounds: when the upstream asks the client for
 * something (elicitation, sampling, roots) the round ends `input_required`
 * with an unguessable `requestState`, and the client's retry carries the
 * answers back to the waiting upstream request (multi-round-trip requests).
 */
export class StatelessCall {
  readonly #transport: Transport;
  readonly #originalId: RequestId;
  readonly #shape: (result: Record<string, unknown>) => Record<string, unknown>;
  /** Who started the call; only they may resume it. */
  readonly #owner: string;
  #reply: ModernReply | undefined;
  #replyId: RequestId;
  #asks: Record<string, { method: string; params?: Record<string, unknown> }> = {};
  #state: string | undefined;
  #finished = false;
  /** The first request, sent upstream when the first round starts. */
  #pendingRequest: Request | undefined;

  constructor(mux: Multiplexer, request: Request, capabilities: Record<string, unknown>, shape: (result: Record<string, unknown>) => Record<string, unknown>, owner: string, peer: SessionPeer = {}) {
    this.#owner = owner;
    this.#originalId = request.id;
    this.#replyId = request.id;
    this.#shape = shape;
    this.#transport = {
      start: async () => undefined,
      send: async (message, options) => this.#fromUpstream(message, options?.relatedRequestId),
      close: async () => this.#transport.onclose?.(),
    };
    mux.attach(this.#transport, owner, capabilities, peer);
    this.#pendingRequest = request;
  }

  /** The call whose round ended with this requestState, if it is still waiting and `owner` started it. */
  static resume(state: string, owner: string): StatelessCall | undefined {
    const entry = parked.get(state);
    // Someone else's state leaves the call parked for its owner.
    if (entry === undefined || entry.owner !== owner || entry.expires < Date.now()) return undefined;
    parked.delete(state);
    return entry.call;
  }

  /** Serves one HTTP round: the first request, or a retry carrying `inputResponses`. */
  round(res: ServerResponse, id: RequestId, inputResponses?: Record<string, unknown>): Promise<void> {
    this.#replyId = id;
    return new Promise((resolve) => {
      this.#reply = new ModernReply(res, () => resolve());
      res.once('close', () => {
        // A client that goes away mid-round cancels the call upstream.
        if (!res.writableFinished && this.#reply?.res === res) void this.#abandon();
        resolve();
      });
      const first = this.#pendingRequest;
      this.#pendingRequest = undefined;
      if (first !== undefined) this.#transport.onmessage?.(first as JSONRPCMessage);
      for (const [key, result] of Object.entries(inputResponses ?? {})) {
        if (!(key in this.#asks)) continue;
        delete this.#asks[key];
        this.#transport.onmessage?.({ jsonrpc: '2.0', id: key, result } as JSONRPCMessage);
      }
      // Asks that arrived after the last round ended go out at once.
      if (Object.keys(this.#asks).length > 0) this.#askClient();
    });
  }

  async #fromUpstream(message: JSONRPCMessage, related: RequestId | undefined): Promise<void> {
    if (isResponse(message) && message.id === this.#originalId) {
      const response = message as Response;
      this.#finished = true;
      this.#reply?.finish({ ...(response.result === undefined ? response : { ...response, result: this.#shape(response.result) }), id: this.#replyId } as JSONRPCMessage);
      await this.#transport.close();
    } else if (isRequest(message)) {
      this.#asks[String(message.id)] = { method: message.method, ...(message.params === undefined ? {} : { params: message.params }) };
      if (this.#reply !== undefined && !this.#reply.ended) this.#askClient();
    } else if (isNotification(message) && related === this.#originalId) {
      this.#reply?.notify(message);
    }
    // Broadcasts have no place in a stateless exchange.
  }

  #askClient(): void {
    this.#state ??= randomBytes(24).toString('base64url');
    park(this.#state, this, this.#owner);
    this.#reply?.finish({
      jsonrpc: '2.0',
      id: this.#replyId,
      result: this.#shape({ resultType: 'input_required', inputRequests: this.#asks, requestState: this.#state }),
    } as JSONRPCMessage);
  }

  async #abandon(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#state !== undefined) parked.delete(this.#state);
    await this.#transport.close();
  }

  /** Drops calls whose client never came back; their upstream requests are cancelled. */
  static expire(now = Date.now()): void {
    for (const [state, entry] of parked) {
      if (entry.expires >= now && parked.size <= MAX_PARKED) continue;
      parked.delete(state);
      void entry.call.#abandon();
    }
  }
}

function park(state: string, call: StatelessCall, owner: string): void {
  parked.set(state, { call, owner, expires: Date.now() + PARK_TTL_MS });
  StatelessCall.expire();
}

/**
 * Answers with JSON, or switches to an SSE stream when a related
 * notification (progress) arrives before the result.
 */
class ModernReply {
  readonly res: ServerResponse;
  readonly #done: () => void;
  #streaming = false;
  ended = false;

  constructor(res: ServerResponse, done: () => void) {
    this.res = res;
    this.#done = done;
  }

  notify(message: JSONRPCMessage): void {
    if (this.ended) return;
    if (!this.#streaming) {
      this.#streaming = true;
      this.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' });
    }
    // Progress is superseded by the next one: a client this far behind loses some, never the result.
    if (this.res.writableLength > MAX_QUEUED_BYTES) return;
    this.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  }

  finish(message: JSONRPCMessage): void {
    if (this.ended) return;
    this.ended = true;
    if (this.#streaming) {
      this.res.end(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
    } else {
      writeJson(this.res, 200, message);
    }
    this.#done();
  }
}
