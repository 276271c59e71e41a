// Errors the proxy raises while serving a request: each knows the HTTP status
// and JSON-RPC code it is answered with. Anything else reaching the request
// handler is a bug: a 500 naming the request id, never its raw message.
import { BerthError } from '../errors.ts';
import { ErrorCode } from './jsonrpc.ts';

export type ProxyErrorCode = 'upstream_unavailable' | 'upstream_closed' | 'upstream_timeout' | 'start_aborted' | 'server_not_running' | 'instance_limit';

const ANSWER: Readonly<Record<ProxyErrorCode, { readonly status: number; readonly rpc: number }>> = {
  upstream_unavailable: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  upstream_closed: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  upstream_timeout: { status: 504, rpc: ErrorCode.requestTimeout },
  start_aborted: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  server_not_running: { status: 503, rpc: ErrorCode.upstreamUnavailable },
  instance_limit: { status: 429, rpc: ErrorCode.upstreamUnavailable },
};

export class ProxyError extends BerthError {
  readonly status: number;
  readonly rpcCode: number;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ProxyError';
    this.status = ANSWER[code].status;
    this.rpcCode = ANSWER[code].rpc;
  }
}
