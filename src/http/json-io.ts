import type { IncomingMessage, ServerResponse } from 'node:http';
import { redactUrls } from '../observe/redact.ts';
import type { RequestId } from './jsonrpc.ts';
import { ErrorCode } from './jsonrpc.ts';

/** A transport-level refusal: HTTP status plus JSON-RPC error. */
export interface Refusal {
  readonly status: number;
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Writes a complete JSON response (compact, with its length). */
export function writeJson(res: ServerResponse, status: number, value: unknown, headers: Readonly<Record<string, string>> = {}, indent?: number): void {
  const body = JSON.stringify(value, null, indent);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** Answers a refused request with its status and a JSON-RPC error carrying the request's id, if known. */
export function sendRefusal(res: ServerResponse, id: RequestId | null, refusal: Refusal): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // A message may quote an upstream's error, which may quote its URL with credentials in it.
  const error = { code: refusal.code, message: redactUrls(refusal.message), ...(refusal.data === undefined ? {} : { data: refusal.data }) };
  writeJson(res, refusal.status, { jsonrpc: '2.0', id, error }, refusal.headers);
}

/** Writes a JSON-RPC error with an HTTP status, the way MCP transports answer transport-level failures. */
export function sendRpcError(res: ServerResponse, status: number, code: number, message: string, headers: Readonly<Record<string, string>> = {}): void {
  sendRefusal(res, null, { status, code, message, headers });
}

/** Operations endpoints: indented for people with curl, never cached. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  writeJson(res, status, value, { 'cache-control': 'no-store' }, 2);
}

export type BodyResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly status: number; readonly code: number; readonly message: string };

/** Reads a JSON body up to `limit` bytes: 413 past it, -32700 for malformed JSON. */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  const tooLarge: BodyResult = { ok: false, status: 413, code: ErrorCode.invalidRequest, message: `request body over ${limit} bytes` };
  if (declared > limit) return Promise.resolve(tooLarge);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.resume();
      resolve(tooLarge);
    };
    req.on('data', onData);
    req.once('error', () => resolve({ ok: false, status: 400, code: ErrorCode.invalidRequest, message: 'request body could not be read' }));
    req.once('end', () => {
      if (size > limit) return;
      try {
        resolve({ ok: true, value: JSON.parse(Buffer.concat(chunks, size).toString('utf8')) });
      } catch {
        resolve({ ok: false, status: 400, code: ErrorCode.parseError, message: 'Parse error: invalid JSON' });
      }
    });
  });
}

/** The last Accept header checked and what it admits: clients send the same one on every request. */
let lastAccept: { header: string; types: Map<string, boolean> } | undefined;

/** True when a media-type list (Accept) names the type, ignoring parameters and case. */
export function accepts(header: string | undefined, type: string): boolean {
  if (header === undefined) return false;
  if (lastAccept?.header !== header) lastAccept = { header, types: new Map() };
  let admitted = lastAccept.types.get(type);
  if (admitted === undefined) lastAccept.types.set(type, (admitted = parseAccepts(header, type)));
  return admitted;
}

function parseAccepts(header: string, type: string): boolean {
  return header.split(',').some((part) => {
    const t = part.split(';')[0]?.trim().toLowerCase();
    return t === type || t === '*/*' || t === `${type.split('/')[0]}/*`;
  });
}

export function isJsonContentType(header: string | undefined): boolean {
  return header?.split(';')[0]?.trim().toLowerCase() === 'application/json';
}
