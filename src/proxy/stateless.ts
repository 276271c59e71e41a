import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { sendRpcError } from './http-util.ts';
import type { Request } from './jsonrpc.ts';
import { ErrorCode, errorResponse, isNotification, isRequest, isResponse, resultResponse } from './jsonrpc.ts';
import type { Multiplexer } from './multiplex.ts';

/** The stateless revision: no initialize, no sessions; every request stands alone. */
export const STATELESS_VERSIONS: readonly string[] = ['2026-07-28'];

/** Where each method names its target, for the `Mcp-Name` header. */
const NAME_PARAM: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'resources/subscribe': 'uri',
  'resources/unsubscribe': 'uri',
};

export function isStatelessRequest(req: IncomingMessage): boolean {
  const version = req.headers['mcp-protocol-version'];
  return typeof version === 'string' && STATELESS_VERSIONS.includes(version);
}

/**
 * `Mcp-Method` and `Mcp-Name` let intermediaries route without reading the
 * body; a body that says otherwise is refused so the two can never disagree.
 */
export function checkRoutingHeaders(req: IncomingMessage, body: unknown): string | undefined {
  const method = header(req, 'mcp-method');
  const name = header(req, 'mcp-name');
  const version = header(req, 'mcp-protocol-version');
  if (version !== undefined && !STATELESS_VERSIONS.includes(version) && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    return `Unsupported protocol version: ${version} (supported: ${[...STATELESS_VERSIONS, ...SUPPORTED_PROTOCOL_VERSIONS].join(', ')})`;
  }
  if (method === undefined && name === undefined) return undefined;
  if (Array.isArray(body) || !(isRequest(body) || isNotification(body))) return 'Mcp-Method/Mcp-Name headers need a single request or notification body';
  if (method !== undefined && method !== body.method) return `Mcp-Method header (${method}) does not match the body's method (${body.method})`;
  const param = NAME_PARAM[body.method];
  if (name !== undefined) {
    const actual = param === undefined ? undefined : body.params?.[param];
    if (actual !== name) return `Mcp-Name header (${name}) does not match the body's ${param ?? 'target'} (${String(actual)})`;
  }
  return undefined;
}

/** Serves one stateless POST: `server/discover` from the upstream's initialize result, the rest forwarded. */
export async function handleStateless(req: IncomingMessage, res: ServerResponse, body: unknown, mux: Multiplexer): Promise<void> {
  if (isNotification(body) || isResponse(body)) {
    res.writeHead(202).end();
    return;
  }
  if (!isRequest(body)) return sendRpcError(res, 400, ErrorCode.invalidRequest, 'Invalid Request: expected one JSON-RPC request');
  if (body.method === 'server/discover') {
    const info = await mux.ready(AbortSignal.timeout(30_000)).catch(() => undefined);
    if (info === undefined) return writeJson(res, errorResponse(body.id, ErrorCode.upstreamUnavailable, 'server is not ready'));
    return writeJson(res, resultResponse(body.id, {
      supportedVersions: [...STATELESS_VERSIONS, ...SUPPORTED_PROTOCOL_VERSIONS],
      capabilities: info.capabilities,
      serverInfo: info.serverInfo,
      ...(info.instructions === undefined ? {} : { instructions: info.instructions }),
    }));
  }
  const response = await forwardOnce(mux, body, res);
  return writeJson(res, response);
}

/** Forwards one request through a throwaway session and resolves with its response. */
function forwardOnce(mux: Multiplexer, request: Request, res: ServerResponse): Promise<JSONRPCMessage> {
  return new Promise((resolve) => {
    const transport: Transport = {
      start: async () => undefined,
      send: async (message: JSONRPCMessage, _options?: TransportSendOptions) => {
        if (isResponse(message) && message.id === request.id) {
          resolve(message);
          await transport.close();
        }
      },
      close: async () => transport.onclose?.(),
    };
    mux.attach(transport);
    // A client that goes away cancels its request upstream.
    res.once('close', () => void transport.close());
    transport.onmessage?.(request as JSONRPCMessage);
  });
}

function writeJson(res: ServerResponse, message: JSONRPCMessage): void {
  const text = JSON.stringify(message);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}
