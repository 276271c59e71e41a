// What a span says about a JSON-RPC message, by the MCP conventions: pure
// functions of the message, no OpenTelemetry types.
import { ATTR, CALLER_ERROR_CODES, EXECUTE_TOOL, META_KEYS, TOOL_ERROR } from './attributes.ts';
import type { TracedRequest } from './telemetry.ts';

/** Methods named as themselves; anything else a peer sends is `_OTHER`, so names and metric series stay bounded. */
const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'initialize', 'ping', 'server/discover', 'tools/list', 'tools/call', 'resources/list', 'resources/read',
  'resources/templates/list', 'resources/subscribe', 'resources/unsubscribe', 'prompts/list', 'prompts/get',
  'completion/complete', 'logging/setLevel', 'sampling/createMessage', 'elicitation/create', 'roots/list',
  'tasks/get', 'tasks/list', 'tasks/result', 'tasks/cancel',
]);

export type Attributes = Record<string, string | number | boolean>;

/** The method as the conventions' `mcp.method.name` takes it. */
export function methodName(method: string): string {
  return KNOWN_METHODS.has(method) ? method : '_OTHER';
}

/** The span name, `{mcp.method.name} {target}`, and the attributes that follow from the request alone. */
export function describeRequest(request: TracedRequest): { name: string; attributes: Attributes; metric: Attributes } {
  const method = methodName(request.method);
  const attributes: Attributes = { [ATTR.mcpMethodName]: method, [ATTR.jsonrpcRequestId]: String(request.id) };
  const metric: Attributes = { [ATTR.mcpMethodName]: method };
  const target = typeof request.params?.['name'] === 'string' ? request.params['name'] : undefined;
  let name = method;
  if (target !== undefined && method === 'tools/call') {
    name = `${method} ${target}`;
    metric[ATTR.genAiToolName] = target;
    metric[ATTR.genAiOperationName] = EXECUTE_TOOL;
  } else if (target !== undefined && method === 'prompts/get') {
    name = `${method} ${target}`;
    metric[ATTR.genAiPromptName] = target;
  }
  const uri = request.params?.['uri'];
  if (typeof uri === 'string' && method.startsWith('resources/')) attributes[ATTR.mcpResourceUri] = uri;
  return { name, attributes: { ...attributes, ...metric }, metric };
}

/** How a request ended, from its response. `error` decides the span status (the conventions' rules differ by side). */
export interface Outcome {
  readonly errorType?: string;
  readonly statusCode?: string;
  readonly error: boolean;
  readonly message?: string;
  readonly result?: unknown;
}

export function outcomeOf(response: unknown, side: 'server' | 'client'): Outcome {
  if (typeof response !== 'object' || response === null) return { error: false };
  const r = response as { error?: { code?: unknown; message?: unknown }; result?: { isError?: unknown } };
  if (r.error !== undefined) {
    const code = typeof r.error.code === 'number' ? r.error.code : undefined;
    const statusCode = code === undefined ? '_OTHER' : String(code);
    // A client counts every JSON-RPC error; a server not those that mean the caller asked for something it cannot have.
    const error = side === 'client' || code === undefined || !CALLER_ERROR_CODES.has(code);
    return { errorType: statusCode, statusCode, error, ...(typeof r.error.message === 'string' ? { message: r.error.message } : {}) };
  }
  if (r.result?.isError === true) return { errorType: TOOL_ERROR, error: true, result: r.result };
  return { error: false, result: r.result };
}

/** The trace context a message carries in `params._meta`, as a string map; undefined when it carries none. */
export function metaCarrier(params: Record<string, unknown> | undefined): Record<string, string> | undefined {
  const meta = params?.['_meta'];
  if (typeof meta !== 'object' || meta === null) return undefined;
  const m = meta as Record<string, unknown>;
  if (typeof m['traceparent'] !== 'string') return undefined;
  const carrier: Record<string, string> = {};
  for (const key of META_KEYS) if (typeof m[key] === 'string') carrier[key] = m[key];
  return carrier;
}

/** `params` with the trace context keys of `_meta` replaced by `carrier`'s; other `_meta` keys are kept. */
export function withMeta(params: Record<string, unknown> | undefined, carrier: Readonly<Record<string, string>>): Record<string, unknown> {
  const { _meta: old, ...rest } = params ?? {};
  const meta: Record<string, unknown> = typeof old === 'object' && old !== null ? { ...(old as Record<string, unknown>) } : {};
  for (const key of META_KEYS) delete meta[key];
  return { ...rest, _meta: { ...meta, ...carrier } };
}
