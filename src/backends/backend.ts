// The backend contract: what every backend (local, docker, kubernetes) does
// and the small types it hands out. Backends own lifecycle only: they create,
// observe and remove instances and say how to reach them. The proxy's
// upstream pool does everything MCP (initialize, readiness, multiplexing,
// hand-over), so a backend never imports the proxy or the planner.
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Unit } from '../desired/types.ts';
import { BerthError } from '../errors.ts';

export type BackendName = 'local' | 'docker' | 'kubernetes';

/**
 * Lifecycle of one instance as its backend sees it. MCP readiness is not
 * here: the pool knows when an instance answered `initialize`.
 */
export type InstanceState = 'creating' | 'running' | 'backoff' | 'crash-looping' | 'failed' | 'stopping' | 'exited';

/** Why an instance is not running, in the words operators know from pods. */
export type FailureClass = 'image-missing' | 'pulling' | 'crash-loop' | 'oom-killed' | 'exited' | 'unschedulable' | 'insufficient-capacity' | 'config-error' | 'start-failed';

/** One running (or failing) instance of a unit, as `list()` and `events()` report it. */
export interface ObservedInstance {
  /** Unique within the backend and stable for the instance's life (a container id, a pod name, a local key). */
  readonly id: string;
  /** The berth instance that owns it; a backend lists only its own owner's instances. */
  readonly owner: string;
  readonly unit: string;
  /** Hash of the user a per-user instance serves; never the raw identity. */
  readonly userHash?: string;
  readonly specHash: string;
  /** 0-based replica index of a shared unit; 0 for per-user instances. */
  readonly replica: number;
  readonly state: InstanceState;
  readonly restarts: number;
  readonly failure?: FailureClass;
  /** The backend's own words for the last failure (exit status, daemon or cluster message). */
  readonly lastError?: string;
  readonly startedAt?: string;
  /** A process id, container id or pod name, for operators. */
  readonly detail?: string;
}

/** What `ensure` converges: the instances of one unit, for one user when per-user. */
export interface Placement {
  readonly unit: Unit;
  /** Set for per-user units: whose instance, and the credentials only that instance gets. */
  readonly user?: { readonly hash: string; readonly env: Readonly<Record<string, string>> };
}

/**
 * The JSON-RPC messages of one supervised stdio process: what a backend hands
 * out for a stdio instance. Each (re)spawn is a fresh server; `onStart` fires
 * for it, `onStop` when the process went away.
 */
export interface StdioStream {
  send(message: JSONRPCMessage): boolean;
  onMessage(handler: (message: unknown) => void): void;
  onStart(handler: () => void): void;
  onStop(handler: (reason: string) => void): void;
}

/** How the proxy reaches an instance: never a proxy object, only a transport. */
export type UpstreamTransport =
  | { readonly kind: 'stdio'; readonly channel: StdioStream }
  | {
      readonly kind: 'http';
      readonly transport: 'streamable-http' | 'sse';
      readonly url: string;
      readonly headers: Readonly<Record<string, string>>;
    };

/** An HTTP endpoint of one instance: what a platform's routing data (EndpointSlices) can say. */
export type HttpTransport = Extract<UpstreamTransport, { readonly kind: 'http' }>;

/** One replica the platform routes to now: ready, not terminating, with its address. */
export interface ReadyReplica {
  readonly instanceId: string;
  readonly specHash: string;
  readonly transport: HttpTransport;
}

/**
 * The ready replicas of one placement (a shared unit, or one user's instance
 * of a per-user unit), whole each time: a replica missing from a later
 * snapshot stopped being routable (gone, terminating or not ready).
 */
export interface PlacementReplicas {
  readonly unit: string;
  readonly userHash?: string;
  readonly ready: readonly ReadyReplica[];
}

/** Where a backend's own event stream stands, for status: a lost one is re-subscribed with backoff. */
export interface EventStreamStatus {
  readonly state: 'watching' | 'reconnecting';
  /** Times the stream was lost since berth started. */
  readonly reconnects: number;
  /** Why the stream was last lost. */
  readonly lastError?: string;
  /** ISO time of the last change of state. */
  readonly since: string;
}

export type InstanceEvent =
  | { readonly kind: 'changed'; readonly instance: ObservedInstance }
  | { readonly kind: 'removed'; readonly id: string; readonly unit: string };

/**
 * Runs instances of units. Every effectful method takes a signal and returns
 * once the backend accepted the change, never waiting for MCP readiness.
 * Writes are idempotent: an unchanged placement makes no backend writes.
 */
export interface Backend {
  readonly name: BackendName;
  /** Every instance this berth owns, as the backend sees it now (after a restart: what to adopt). */
  list(signal: AbortSignal): Promise<readonly ObservedInstance[]>;
  /**
   * Makes the placement's instances at its unit's specHash exist: `replicas`
   * of them for a shared unit, one for a per-user placement. Surplus replicas
   * of the same spec go; instances of the unit at another specHash stay, for
   * the pool to hand over and then remove.
   */
  ensure(placement: Placement, signal: AbortSignal): Promise<readonly ObservedInstance[]>;
  /** Stops and deletes one instance; removing one that is gone is not an error. */
  remove(instanceId: string, signal: AbortSignal): Promise<void>;
  /** How to reach a running instance. */
  endpoint(instanceId: string, signal: AbortSignal): Promise<UpstreamTransport>;
  /**
   * Optional: backends whose platform publishes which replicas are ready and
   * where (Kubernetes EndpointSlices) report every change of a placement's
   * ready set, first every placement's as it is now. The pool then reaches
   * instances only through these and ends the sessions of a replica that
   * leaves the set; `endpoint` stays for one-off lookups.
   */
  replicas?(signal: AbortSignal): AsyncIterable<PlacementReplicas>;
  /** The newest log lines of an instance, oldest first. */
  logs(instanceId: string, tail: number, signal: AbortSignal): Promise<readonly string[]>;
  /** Instance changes as they happen, until the signal aborts. Level-based consumers may merge or miss some: `list` is the truth. */
  events(signal: AbortSignal): AsyncIterable<InstanceEvent>;
  /** Optional: where the event stream stands, for backends whose stream can be lost (a daemon restart). */
  eventStatus?(): EventStreamStatus;
  /**
   * Releases what the backend holds (watches, sockets). The local backend
   * also stops its children, which cannot outlive berth; container backends
   * leave their instances running, to be adopted on the next start.
   */
  close(signal: AbortSignal): Promise<void>;
}

/** Stable codes of backend errors; listed in docs/errors.md. */
export type BackendErrorCode =
  | 'backend_unreachable'
  | 'instance_not_found'
  | 'image_missing'
  | 'start_failed'
  | 'insufficient_capacity'
  | 'forbidden'
  | 'invalid_spec'
  | 'network_mismatch'
  | 'aborted';

/** A backend failure; `retryable` says whether trying again later can help. */
export class BackendError extends BerthError {
  readonly retryable: boolean;

  constructor(code: BackendErrorCode, message: string, options: { retryable: boolean; cause?: unknown }) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackendError';
    this.retryable = options.retryable;
  }
}
