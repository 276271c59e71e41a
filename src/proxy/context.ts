import type { Identity } from '../auth/identity.ts';
import type { Logger } from '../observe/log.ts';

/** What berth knows about one HTTP request while serving it. */
export interface RequestContext {
  readonly requestId: string;
  /** Who is calling, as the auth step established it. */
  readonly identity: Identity;
  /** `identity.user`: the authenticated user, or `anonymous`. */
  readonly user: string;
  /** Whose sessions count together against the per-client cap: the user, or `anonymous@<address>`. */
  readonly client: string;
  readonly log: Logger;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
  /** The configured server the request was routed to; labels metrics. */
  server?: string;
  /** The JSON-RPC method, once the body has been read; labels metrics. */
  method?: string;
}
