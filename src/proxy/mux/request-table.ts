// The id tables of one multiplexed upstream: which downstream session and id
// each forwarded request, progress token and server-initiated request belongs
// to. Upstream ids are berth's own, so sessions can never collide.
import { randomBytes } from 'node:crypto';
import type { RequestId } from '../../http/jsonrpc.ts';
import type { Relay } from '../../observe/trace/telemetry.ts';

/** The part of a downstream session the tables need to know. */
export interface SessionRef {
  readonly id: number;
}

export interface Pending<S extends SessionRef> {
  readonly session: S;
  readonly id: RequestId;
  readonly upstreamId: number;
  readonly progressToken?: string;
  readonly method: string;
  /** When the request times out (the multiplexer's clock), and the timeout that set it. */
  deadline: number;
  timeoutMs: number;
  /** Its spans, while telemetry is on. */
  trace?: Relay;
}

/** Where an upstream progress token leads: the session, its own token, and the request it belongs to. */
export interface ProgressTarget<S extends SessionRef> {
  readonly session: S;
  readonly token: RequestId;
  readonly related: RequestId;
  readonly upstreamId: number;
}

export interface ServerRequest<S extends SessionRef> {
  readonly session: S;
  readonly upstreamId: RequestId;
  readonly downstreamId: string;
  /** Its spans, while telemetry is on. */
  trace?: Relay;
}

export class RequestTable<S extends SessionRef> {
  readonly #pending = new Map<number, Pending<S>>();
  readonly #progress = new Map<string, ProgressTarget<S>>();
  readonly #serverRequests = new Map<string, ServerRequest<S>>();
  #nextId = 1;

  get size(): number {
    return this.#pending.size;
  }

  /** Registers a downstream request; returns its upstream id and progress token. */
  track(session: S, id: RequestId, method: string, progressToken: RequestId | undefined): Pending<S> {
    const upstreamId = this.#nextId++;
    const upstreamToken = progressToken === undefined ? undefined : `p${upstreamId}`;
    const pending: Pending<S> = { session, id, upstreamId, method, deadline: Infinity, timeoutMs: 0, ...(upstreamToken === undefined ? {} : { progressToken: upstreamToken }) };
    this.#pending.set(upstreamId, pending);
    if (upstreamToken !== undefined && progressToken !== undefined) this.#progress.set(upstreamToken, { session, token: progressToken, related: id, upstreamId });
    return pending;
  }

  get(upstreamId: unknown): Pending<S> | undefined {
    return typeof upstreamId === 'number' ? this.#pending.get(upstreamId) : undefined;
  }

  /** Forgets a request (answered, cancelled, timed out); returns it if it was still pending. */
  settle(upstreamId: number): Pending<S> | undefined {
    const pending = this.#pending.get(upstreamId);
    if (pending === undefined) return undefined;
    this.#pending.delete(upstreamId);
    if (pending.progressToken !== undefined) this.#progress.delete(pending.progressToken);
    return pending;
  }

  /** Every pending request, oldest first. */
  pending(): IterableIterator<Pending<S>> {
    return this.#pending.values();
  }

  /** The newest request in flight, over all sessions: server-initiated requests belong to it. */
  newest(): Pending<S> | undefined {
    let last: Pending<S> | undefined;
    for (const p of this.#pending.values()) last = p;
    return last;
  }

  /** The newest request in flight of one session. */
  newestOf(session: S): Pending<S> | undefined {
    let last: Pending<S> | undefined;
    for (const p of this.#pending.values()) if (p.session === session) last = p;
    return last;
  }

  progressTarget(token: unknown): ProgressTarget<S> | undefined {
    return this.#progress.get(String(token));
  }

  /**
   * Registers a server-initiated request sent to a session under a downstream
   * id of berth's: random, so no other session can name it.
   */
  trackServerRequest(session: S, upstreamId: RequestId): ServerRequest<S> {
    const downstreamId = `berth-${randomBytes(16).toString('base64url')}`;
    const entry: ServerRequest<S> = { session, upstreamId, downstreamId };
    this.#serverRequests.set(downstreamId, entry);
    return entry;
  }

  /**
   * The server request an answer is for, taken only when `from` is the session
   * it went to (`upstream`: the server itself cancelled it). An answer from any
   * other session leaves it waiting for its own.
   */
  takeServerRequest(downstreamId: unknown, from: S | 'upstream'): ServerRequest<S> | undefined {
    if (typeof downstreamId !== 'string') return undefined;
    const r = this.#serverRequests.get(downstreamId);
    if (r === undefined || (from !== 'upstream' && r.session !== from)) return undefined;
    this.#serverRequests.delete(downstreamId);
    return r;
  }

  /** Server requests whose upstream id matches (a cancellation from the server). */
  *serverRequestsFor(upstreamId: unknown): Generator<[string, ServerRequest<S>]> {
    for (const entry of this.#serverRequests) if (entry[1].upstreamId === upstreamId) yield entry;
  }

  /** Drops every entry of a session that went away; returns what must be cancelled upstream. */
  dropSession(session: S): { requests: Pending<S>[]; serverRequests: ServerRequest<S>[] } {
    const requests = [...this.#pending.values()].filter((p) => p.session === session);
    for (const p of requests) this.settle(p.upstreamId);
    const serverRequests: ServerRequest<S>[] = [];
    for (const [key, r] of this.#serverRequests) {
      if (r.session !== session) continue;
      this.#serverRequests.delete(key);
      serverRequests.push(r);
    }
    return { requests, serverRequests };
  }

  /** Empties the tables (the upstream went away); returns the requests that will get no answer, and the server requests nobody waits for now. */
  clear(): { requests: Pending<S>[]; serverRequests: ServerRequest<S>[] } {
    const requests = [...this.#pending.values()];
    for (const p of requests) this.settle(p.upstreamId);
    const serverRequests = [...this.#serverRequests.values()];
    this.#serverRequests.clear();
    this.#progress.clear();
    return { requests, serverRequests };
  }
}
