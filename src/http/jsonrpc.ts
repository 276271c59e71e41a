import { redactUrls } from '../observe/redact.ts';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

// Structural checks for the hot path: the SDK's type guards run a full zod
// parse per message, which costs more than the forwarding itself.

export type RequestId = string | number;

export interface Request {
  readonly jsonrpc: '2.0';
  readonly id: RequestId;
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

export interface Notification {
  readonly jsonrpc: '2.0';
  readonly method: string;
  readonly params?: Record<string, unknown>;
}

export interface Response {
  readonly jsonrpc: '2.0';
  readonly id: RequestId;
  readonly result?: Record<string, unknown>;
  readonly error?: { code: number; message: string; data?: unknown };
}

export function isRequest(m: unknown): m is Request {
  return typeof m === 'object' && m !== null && 'method' in m && 'id' in m && (typeof m.id === 'string' || typeof m.id === 'number');
}

export function isNotification(m: unknown): m is Notification {
  return typeof m === 'object' && m !== null && 'method' in m && !('id' in m);
}

export function isResponse(m: unknown): m is Response {
  return typeof m === 'object' && m !== null && !('method' in m) && 'id' in m && ('result' in m || 'error' in m);
}

/** JSON-RPC error codes berth answers with. */
export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  /**
   * The upstream server is not available (starting, restarting, crashed).
   * Distinct from the SDK's -32001 (session not found) and MCP's -32002
   * (resource not found).
   */
  upstreamUnavailable: -32003,
  /** A forwarded request got no answer before its deadline. */
  requestTimeout: -32004,
} as const;

export function errorResponse(id: RequestId | null, code: number, message: string, data?: unknown): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code, message: redactUrls(message), ...(data === undefined ? {} : { data }) } } as JSONRPCMessage;
}

export function resultResponse(id: RequestId, result: Record<string, unknown>): JSONRPCMessage {
  return { jsonrpc: '2.0', id, result } as JSONRPCMessage;
}

/** The progress token a request asks progress notifications for, if any. */
export function progressTokenOf(m: Request): RequestId | undefined {
  const meta = m.params?.['_meta'];
  if (typeof meta !== 'object' || meta === null) return undefined;
  const token = (meta as Record<string, unknown>)['progressToken'];
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}

/** A copy of a request with another id and, when given, another progress token. */
export function withIds(m: Request, id: RequestId, progressToken?: RequestId): Request {
  if (progressToken === undefined) return { ...m, id };
  const params = m.params ?? {};
  return { ...m, id, params: { ...params, _meta: { ...(params['_meta'] as object), progressToken } } };
}

/**
 * The id of a JSON-RPC response from the edges of its text: `"id"` as the
 * first key (after `jsonrpc`) or as the last one, the two orders servers use.
 * Never guessed from the middle, where a result may quote anything.
 */
export function responseIdOf(head: string, tail: string): string | number | undefined {
  // A server's own request (it carries a method) is no answer to anything of berth's.
  if (/^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?(?:"id"\s*:\s*(?:-?\d+|"(?:[^"\\]|\\.)*")\s*,\s*)?"method"\s*:/.test(head)) return undefined;
  return messageIdOf(head, tail);
}

/** The id of any JSON-RPC message (a client's request, say) from the edges of its text, read as responseIdOf reads one. */
export function messageIdOf(head: string, tail: string): string | number | undefined {
  const match = /^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*,/.exec(head) ?? /[,{]\s*"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*\}\s*$/.exec(tail);
  const raw = match?.[1];
  if (raw === undefined) return undefined;
  return raw.startsWith('"') ? (JSON.parse(raw) as string) : Number(raw);
}
