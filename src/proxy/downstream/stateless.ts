import type { IncomingMessage, ServerResponse } from 'node:http';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { Refusal } from '../../http/json-io.ts';
import { sendRefusal, writeJson } from '../../http/json-io.ts';
import type { Request } from '../../http/jsonrpc.ts';
import { ErrorCode, isNotification, isRequest } from '../../http/jsonrpc.ts';
import type { Multiplexer, SessionPeer, UpstreamInfo } from '../mux/multiplex.ts';
import { StatelessCall } from './stateless-call.ts';

// The stateless revision (2026-07-28): no initialize, no sessions; every
// request carries its protocol version and client capabilities in `_meta` and
// names its method (and target) in headers. berth serves it in front of
// upstreams that speak the session-based revisions; see docs/protocol-2026.md.

export const MODERN_VERSIONS: readonly string[] = ['2026-07-28'];

const META_VERSION = 'io.modelcontextprotocol/protocolVersion';
const META_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
const META_PREFIX = 'io.modelcontextprotocol/';

/** Header/body disagreement, unsupported version and missing capability (SEP-2243). */
const HEADER_MISMATCH = -32020;
const UNSUPPORTED_VERSION = -32022;

/** Where each method names its target, for the `Mcp-Name` header. */
const NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/** Methods of the 2026-07-28 registry berth serves; anything else is 404 -32601. */
const MODERN_METHODS = new Set([
  'server/discover',
  'tools/list',
  'tools/call',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/read',
  'resources/templates/list',
  'completion/complete',
]);

/** Results clients may cache; they must say for how long and for whom. */
const CACHEABLE = new Set(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list', 'resources/read', 'server/discover']);


export type Classification = { readonly era: 'legacy' } | { readonly era: 'modern'; readonly message: Request | { method: string; params?: Record<string, unknown> } } | { readonly era: 'invalid'; readonly refusal: Refusal };

/**
 * Tells a 2026-07-28 request from a session-era one by its body (the `_meta`
 * envelope), then checks the routing headers against the body, in the order
 * the reference SDK does, so both give the same answer to the same mistake.
 */
export function classify(req: IncomingMessage, body: unknown): Classification {
  const headerVersion = header(req, 'mcp-protocol-version');
  const headerModern = headerVersion !== undefined && MODERN_VERSIONS.includes(headerVersion);
  if (Array.isArray(body)) {
    return body.some((m) => envelopeOf(m) !== undefined) ? invalid(400, ErrorCode.invalidRequest, 'Invalid Request: batches are not allowed in protocol version 2026-07-28') : { era: 'legacy' };
  }
  if (!isRequest(body) && !isNotification(body)) return { era: 'legacy' };
  const envelope = envelopeOf(body);
  if (envelope === undefined) {
    if (!headerModern) return legacyHeaderCheck(req, body);
    if (body.method === 'initialize') return invalid(400, HEADER_MISMATCH, `Bad Request: initialize is not part of protocol version ${headerVersion}; the MCP-Protocol-Version header names it`);
    return invalid(400, ErrorCode.invalidParams, `Invalid _meta envelope: ${META_VERSION} is required by protocol version ${headerVersion}`);
  }
  const bodyVersion = envelope[META_VERSION];
  if (typeof bodyVersion !== 'string') return invalid(400, ErrorCode.invalidParams, `Invalid _meta envelope: ${META_VERSION} must be a string`);
  if (headerVersion !== bodyVersion) {
    const named = headerVersion === undefined ? 'the required MCP-Protocol-Version header is absent' : `the MCP-Protocol-Version header names ${headerVersion}`;
    return invalid(400, HEADER_MISMATCH, `Bad Request: the request headers and body disagree: the body envelope names protocol version ${bodyVersion} but ${named}`, { mismatch: { header: headerVersion ?? '(missing)', body: bodyVersion } });
  }
  const method = header(req, 'mcp-method');
  if (method !== body.method) {
    const named = method === undefined ? 'the required Mcp-Method header is absent' : `the Mcp-Method header names ${method}`;
    return invalid(400, HEADER_MISMATCH, `Bad Request: the request headers and body disagree: the body names method ${body.method} but ${named}`, { mismatch: { header: method ?? '(missing)', body: body.method } });
  }
  if (!MODERN_VERSIONS.includes(bodyVersion)) {
    return invalid(400, UNSUPPORTED_VERSION, `Unsupported protocol version: ${bodyVersion}`, { supported: MODERN_VERSIONS, requested: bodyVersion });
  }
  const nameProblem = checkName(req, body);
  if (nameProblem !== undefined) return invalid(400, HEADER_MISMATCH, nameProblem);
  if (typeof envelope[META_CAPABILITIES] !== 'object' || envelope[META_CAPABILITIES] === null) {
    return invalid(400, ErrorCode.invalidParams, `Invalid _meta envelope: ${META_CAPABILITIES} is required`);
  }
  if (isRequest(body) && !MODERN_METHODS.has(body.method)) return invalid(404, ErrorCode.methodNotFound, 'Method not found');
  return { era: 'modern', message: body };
}

/** Session-era requests may carry the routing headers too; they must still agree with the body. */
function legacyHeaderCheck(req: IncomingMessage, body: { method: string; params?: Record<string, unknown> }): Classification {
  const version = header(req, 'mcp-protocol-version');
  if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
    return invalid(400, -32000, `Bad Request: Unsupported protocol version: ${version} (supported versions: ${[...MODERN_VERSIONS, ...SUPPORTED_PROTOCOL_VERSIONS].join(', ')})`);
  }
  const method = header(req, 'mcp-method');
  if (method !== undefined && method !== body.method) return invalid(400, HEADER_MISMATCH, `Bad Request: the body names method ${body.method} but the Mcp-Method header names ${method}`);
  const nameProblem = header(req, 'mcp-name') === undefined ? undefined : checkName(req, body);
  if (nameProblem !== undefined) return invalid(400, HEADER_MISMATCH, nameProblem);
  return { era: 'legacy' };
}

function checkName(req: IncomingMessage, body: { method: string; params?: Record<string, unknown> }): string | undefined {
  const source = NAME_SOURCE[body.method];
  const raw = header(req, 'mcp-name');
  if (source === undefined) return undefined;
  const expected = body.params?.[source];
  if (typeof expected !== 'string') return undefined;
  if (raw === undefined) return `Bad Request: the request headers and body disagree: the body carries params.${source}=${JSON.stringify(expected)} but the required Mcp-Name header is absent`;
  const name = decodeParamValue(raw);
  if (name === undefined) return 'Bad Request: the request headers and body disagree: the Mcp-Name header carries an invalid Base64 sentinel value';
  if (name !== expected) return `Bad Request: the request headers and body disagree: the body carries params.${source}=${JSON.stringify(expected)} but the Mcp-Name header names ${JSON.stringify(name)}`;
  return undefined;
}

/** Header values outside printable ASCII travel as `=?base64?…?=`. */
function decodeParamValue(raw: string): string | undefined {
  const match = /^=\?base64\?([A-Za-z0-9+/=]*)\?=$/.exec(raw);
  if (match === null) return raw;
  const text = Buffer.from(match[1] ?? '', 'base64').toString('utf8');
  return Buffer.from(text, 'utf8').toString('base64').replace(/=+$/, '') === (match[1] ?? '').replace(/=+$/, '') ? text : undefined;
}

/** Serves one 2026-07-28 POST against a session-era upstream, for `owner` (server and user). */
export async function serveModern(res: ServerResponse, message: Request | { method: string }, mux: Multiplexer, owner: string, peer: SessionPeer = {}): Promise<void> {
  if (!isRequest(message)) {
    res.writeHead(202).end();
    return;
  }
  let info: UpstreamInfo;
  try {
    info = await mux.ready(AbortSignal.timeout(30_000));
  } catch (err) {
    return sendRefusal(res, message.id, { status: 503, code: ErrorCode.upstreamUnavailable, message: (err as Error).message });
  }
  if (message.method === 'server/discover') {
    return writeJson(res, 200, { jsonrpc: '2.0', id: message.id, result: decorate('server/discover', discoverResult(info), info) });
  }
  const params = message.params ?? {};
  if (typeof params['requestState'] === 'string') {
    const call = StatelessCall.resume(params['requestState'], owner);
    // Another caller's requestState gets the same answer as an expired one: its existence is not told.
    if (call === undefined) return sendRefusal(res, message.id, { status: 404, code: ErrorCode.invalidParams, message: 'Invalid params: requestState is unknown or expired; send the request again without it' });
    return call.round(res, message.id, params['inputResponses'] as Record<string, unknown> | undefined);
  }
  const envelope = (params['_meta'] ?? {}) as Record<string, unknown>;
  const capabilities = (envelope[META_CAPABILITIES] ?? {}) as Record<string, unknown>;
  const call = new StatelessCall(mux, toUpstream(message), capabilities, (result) => decorate(message.method, result, info), owner, { ...peer, protocolVersion: String(envelope[META_VERSION]) });
  return call.round(res, message.id);
}

function discoverResult(info: UpstreamInfo): Record<string, unknown> {
  // Without a subscriptions/listen stream, change notifications cannot reach a stateless client.
  const { tasks: _tasks, ...capabilities } = info.capabilities;
  const withoutPush = Object.fromEntries(
    Object.entries(capabilities).map(([k, v]) => {
      if (typeof v !== 'object' || v === null) return [k, v];
      const { listChanged: _l, subscribe: _s, ...rest } = v as Record<string, unknown>;
      return [k, rest];
    }),
  );
  return { supportedVersions: MODERN_VERSIONS, capabilities: withoutPush, ...(info.instructions === undefined ? {} : { instructions: info.instructions }) };
}

/** The 2026 result shape: `resultType`, cache hints where required, server identity in `_meta`. */
function decorate(method: string, result: Record<string, unknown>, info: UpstreamInfo): Record<string, unknown> {
  const out: Record<string, unknown> = { ...result, resultType: result['resultType'] ?? 'complete' };
  if (CACHEABLE.has(method)) {
    out['ttlMs'] ??= 0;
    out['cacheScope'] ??= 'private';
  }
  if (method === 'tools/list' && Array.isArray(result['tools'])) {
    out['tools'] = (result['tools'] as Record<string, unknown>[]).map(({ execution: _e, ...tool }) => tool);
  }
  out['_meta'] = { ...(result['_meta'] as object | undefined), [META_SERVER_INFO]: info.serverInfo };
  return out;
}

/** The request as a session-era upstream expects it: no envelope keys, no MRTR fields. */
function toUpstream(message: Request): Request {
  const { inputResponses: _i, requestState: _r, ...params } = message.params ?? {};
  const meta = Object.fromEntries(Object.entries((params['_meta'] as Record<string, unknown> | undefined) ?? {}).filter(([k]) => !k.startsWith(META_PREFIX)));
  return { ...message, params: { ...params, ...(Object.keys(meta).length === 0 ? { _meta: undefined } : { _meta: meta }) } };
}

function envelopeOf(message: unknown): Record<string, unknown> | undefined {
  if (typeof message !== 'object' || message === null || !('params' in message)) return undefined;
  const params = message.params;
  if (typeof params !== 'object' || params === null || !('_meta' in params)) return undefined;
  const meta = params._meta;
  if (typeof meta !== 'object' || meta === null || !(META_VERSION in meta)) return undefined;
  return meta as Record<string, unknown>;
}

function invalid(status: number, code: number, message: string, data?: unknown): Classification {
  return { era: 'invalid', refusal: { status, code, message, ...(data === undefined ? {} : { data }) } };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}
