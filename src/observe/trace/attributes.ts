// The MCP semantic conventions berth implements, by name, in one place. They
// are in Development and moved out of the JS semantic-conventions package (it
// marks them deprecated), so berth spells them itself, pinned to:
// open-telemetry/semantic-conventions-genai, docs/gen-ai/mcp.md at
// 1e01e830ef3c17b939ab7db8d25c7061e4239c0b (model/mcp/ of the same tree).

export const SEMCONV_REVISION = 'open-telemetry/semantic-conventions-genai@1e01e830ef3c17b939ab7db8d25c7061e4239c0b';

export const ATTR = {
  mcpMethodName: 'mcp.method.name',
  mcpProtocolVersion: 'mcp.protocol.version',
  mcpSessionId: 'mcp.session.id',
  mcpResourceUri: 'mcp.resource.uri',
  jsonrpcRequestId: 'jsonrpc.request.id',
  jsonrpcProtocolVersion: 'jsonrpc.protocol.version',
  rpcResponseStatusCode: 'rpc.response.status_code',
  genAiToolName: 'gen_ai.tool.name',
  genAiPromptName: 'gen_ai.prompt.name',
  genAiOperationName: 'gen_ai.operation.name',
  genAiToolCallArguments: 'gen_ai.tool.call.arguments',
  genAiToolCallResult: 'gen_ai.tool.call.result',
  errorType: 'error.type',
  networkTransport: 'network.transport',
  networkProtocolName: 'network.protocol.name',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  clientAddress: 'client.address',
  // berth's own: which configured server, backend and instance; the user only as a pseudonym.
  berthServer: 'berth.server',
  berthBackend: 'berth.backend',
  berthInstance: 'berth.instance',
  berthUserHash: 'berth.user.hash',
} as const;

export const METRIC = {
  serverOperationDuration: 'mcp.server.operation.duration',
  clientOperationDuration: 'mcp.client.operation.duration',
  serverSessionDuration: 'mcp.server.session.duration',
  clientSessionDuration: 'mcp.client.session.duration',
} as const;

/** The conventions' ExplicitBucketBoundaries, the same for all four histograms (seconds). */
export const DURATION_BUCKETS: readonly number[] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

export const EXECUTE_TOOL = 'execute_tool';
export const TOOL_ERROR = 'tool_error';

/** The `_meta` keys of trace context (SEP-414: W3C Trace Context and Baggage value formats). */
export const META_KEYS = ['traceparent', 'tracestate', 'baggage'] as const;

/**
 * JSON-RPC codes a server answers for a request it could not serve; per the
 * conventions they are not the server's error (parse, invalid request,
 * method not found, invalid params, resource not found).
 */
export const CALLER_ERROR_CODES: ReadonlySet<number> = new Set([-32700, -32600, -32601, -32602, -32002]);
