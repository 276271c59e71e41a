// What the proxy rooms call to trace MCP traffic. This module loads no
// OpenTelemetry code: while telemetry is off every call is a property read
// and a return, and the SDK is never imported (see start.ts).

/** A JSON-RPC request as berth handles it. */
export interface TracedRequest {
  readonly id: string | number;
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

/** The client side of a request berth received: a downstream session, or an upstream asking a client something. */
export interface Caller {
  readonly server: string;
  /** The authenticated user; spans carry only a keyed hash of it. */
  readonly user?: string;
  readonly sessionId?: string;
  readonly protocolVersion?: string;
  readonly address?: string;
  /** `tcp` for HTTP clients (the default), `pipe` for a stdio upstream asking berth. */
  readonly transport?: 'tcp' | 'pipe' | 'inproc';
  /** The HTTP request's headers: their `traceparent` is the parent when `_meta` has none. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
}

/** Where berth sends a request: an upstream instance or remote, or back to a client. */
export interface Callee {
  readonly server: string;
  readonly transport: 'tcp' | 'pipe' | 'inproc';
  readonly address?: string;
  readonly port?: number;
  readonly protocolVersion?: string;
  readonly sessionId?: string;
  readonly backend?: string;
  readonly instance?: string;
}

/** One traced request: ends once, with the JSON-RPC response or a local failure. */
export interface Operation {
  /** Ends with the response berth received (client side) or sent (server side). */
  end(response: unknown): void;
  /** Ends without a response: `errorType` is low-cardinality (`timeout`, `upstream_stopped`, `cancelled`). */
  fail(errorType: string, message: string): void;
}

export interface Telemetry {
  readonly on: boolean;
  /** A SERVER span (and its duration) for a request berth received; its parent comes from `params._meta`, else the HTTP header. */
  received(request: TracedRequest, caller: Caller): Operation | undefined;
  /**
   * A CLIENT span for a request berth sends, child of `parent`; returns the
   * request to send, with the span's context in `params._meta` (SEP-414).
   */
  send<R extends TracedRequest>(request: R, parent: Operation | undefined, callee: Callee): { readonly request: R; readonly op: Operation | undefined };
  /** A session ended: a client's with berth (`server`) or berth's connection to an upstream (`client`). */
  sessionEnded(side: 'server' | 'client', startedAt: number, attrs: { readonly protocolVersion?: string; readonly transport: 'tcp' | 'pipe' | 'inproc'; readonly errorType?: string; readonly address?: string; readonly port?: number }): void;
  /** The `traceparent` (and `tracestate`, `baggage`) an outgoing HTTP request of a message carries as headers. */
  headersOf(message: unknown): Readonly<Record<string, string>> | undefined;
  /** Flushes and stops the exporters. */
  shutdown(): Promise<void>;
}

const OFF: Telemetry = {
  on: false,
  received: () => undefined,
  send: (request) => ({ request, op: undefined }),
  sessionEnded: () => undefined,
  headersOf: () => undefined,
  shutdown: () => Promise.resolve(),
};

let current: Telemetry = OFF;

/** The process's telemetry: off until the composition root starts it. */
export function telemetry(): Telemetry {
  return current;
}

/** Installs the process's telemetry (once, at start-up); `undefined` turns it off again (tests). */
export function useTelemetry(t: Telemetry | undefined): void {
  current = t ?? OFF;
}

/** An HTTP upstream's address and port, as client spans carry them. */
export function httpCallee(url: string): { readonly transport: 'tcp'; readonly address: string; readonly port: number } {
  const u = new URL(url);
  const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  return { transport: 'tcp', address: u.hostname.replace(/^\[|\]$/g, ''), port };
}

/** The spans of one relayed request: as berth received it, and as berth sent it on. */
export interface Relay {
  readonly received: Operation | undefined;
  readonly sent: Operation | undefined;
}

/** Ends both spans with the answer: the one berth sent first, then the one berth received. */
export function endRelay(relay: Relay | undefined, response: unknown): void {
  relay?.sent?.end(response);
  relay?.received?.end(response);
}

export function failRelay(relay: Relay | undefined, errorType: string, message: string): void {
  relay?.sent?.fail(errorType, message);
  relay?.received?.fail(errorType, message);
}
