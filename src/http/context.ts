import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../identity.ts';
import { ANONYMOUS } from '../identity.ts';
import type { Logger } from '../observe/log.ts';

/** What berth knows about one HTTP request while serving it. */
export interface RequestContext {
  readonly requestId: string;
  /** Who is calling, as the auth step established it. */
  readonly identity: Identity;
  /** `identityKey(identity)`: what the caller's instances, credentials and sessions are kept under. */
  readonly user: string;
  /** Whose sessions count together against the per-client cap: `user:<identity key>`, whatever address it comes from. */
  readonly client: string;
  readonly log: Logger;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
  /** The configured server the request was routed to; labels metrics. */
  server?: string;
  /** The JSON-RPC method, once the body has been read; labels metrics. */
  method?: string;
}

/** A request's context, with the caller's `X-Request-Id` or a new one, which the answer carries. */
export function requestContext(req: IncomingMessage, res: ServerResponse, logger: Logger): Context {
  const requestId = headerValue(req, 'x-request-id') ?? nextRequestId();
  res.setHeader('x-request-id', requestId);
  return new Context(requestId, res, logger);
}

/** A request's context, whose identity and client the front door sets; the abort signal and the child logger are made only when used. */
export class Context implements RequestContext {
  readonly requestId: string;
  // Set by the front door before any route sees the context.
  identity: Identity = ANONYMOUS;
  client = '';
  server?: string;
  method?: string;
  readonly #res: ServerResponse;
  readonly #logger: Logger;
  #log: Logger | undefined;
  #abort: AbortController | undefined;

  constructor(requestId: string, res: ServerResponse, logger: Logger) {
    this.requestId = requestId;
    this.#res = res;
    this.#logger = logger;
  }

  get user(): string {
    return this.identity.key;
  }

  get log(): Logger {
    return (this.#log ??= this.#logger.child({ requestId: this.requestId }));
  }

  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      const abort = new AbortController();
      this.#abort = abort;
      // Only a client that leaves before the answer is complete aborts.
      this.#res.once('close', () => {
        if (!this.#res.writableFinished) abort.abort();
      });
    }
    return this.#abort.signal;
  }
}

// Request ids are unique per process and across restarts, without a random UUID per request.
const REQUEST_ID_PREFIX = randomUUID().slice(0, 8);
let requestSeq = 0;

function nextRequestId(): string {
  return `${REQUEST_ID_PREFIX}-${(++requestSeq).toString(36)}`;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v.length <= 200 ? v : undefined;
}
