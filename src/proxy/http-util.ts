import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from './jsonrpc.ts';

/** Writes a JSON-RPC error with an HTTP status, the way MCP transports answer transport-level failures. */
export function sendRpcError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
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

/** True when a media-type list (Accept) names the type, ignoring parameters and case. */
export function accepts(header: string | undefined, type: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((part) => {
    const t = part.split(';')[0]?.trim().toLowerCase();
    return t === type || t === '*/*' || t === `${type.split('/')[0]}/*`;
  });
}

export function isJsonContentType(header: string | undefined): boolean {
  return header?.split(';')[0]?.trim().toLowerCase() === 'application/json';
}
