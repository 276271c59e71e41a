// Errors the proxy raises while serving a request: each knows the HTTP status
// and JSON-RPC code it is answered with. Anything else reaching the request
// handler is a bug: a 500 naming the request id, never its raw message.
import { BerthError } from '../errors.ts';
import { ErrorCode } from './jsonrpc.ts';

export type ProxyErrorCode = 'upstream_unavailable' | 'remote_unavailable' | 'credentials_missing' | 'authorization_required' | 'upstream_closed' | 'upstream_timeout' | 'start_aborted' | 'server_not_running' | 'instance_limit';

const ANSWER: Readonly<Record<ProxyErrorCode, { readonly status: number; readonly rpc: number }>> = {
  upstream_unavailable: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  upstream_closed: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  remote_unavailable: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  // Answered in-band (HTTP 200) with the request's id: see McpEndpoint.
  credentials_missing: { status: 200, rpc: -32000 },
  authorization_required: { status: 200, rpc: -32000 },
  upstream_timeout: { status: 504, rpc: ErrorCode.requestTimeout },
  start_aborted: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  server_not_running: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  instance_limit: { status: 429, rpc: ErrorCode.upstreamUnavailable },
};

export class ProxyError extends BerthError {
  readonly status: number;
  readonly rpcCode: number;
  /** credentials_missing, authorization_required: which server needs which of the user's values, or their authorization. */
  readonly missing?: { readonly server: string; readonly names: readonly string[]; readonly authorization?: boolean };

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown; missing?: { server: string; names: readonly string[]; authorization?: boolean } }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.missing !== undefined) this.missing = options.missing;
    this.name = 'ProxyError';
    this.status = ANSWER[code].status;
    this.rpcCode = ANSWER[code].rpc;
  }
}
