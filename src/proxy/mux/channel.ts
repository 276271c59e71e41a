import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * The proxy's core interface: messages to and from one upstream MCP
 * connection. A stdio process (a backend's StdioStream), an HTTP upstream and
 * a composite are all one; each (re)start is a fresh server to initialize.
 */
export interface MessageChannel {
  /** Sends one message; false when the upstream is not running. */
  send(message: JSONRPCMessage): boolean;
  /** Every message the upstream sends. */
  onMessage(handler: (message: unknown) => void): void;
  /** A fresh upstream is up and must be initialized. */
  onStart(handler: () => void): void;
  /** The upstream went away; in-flight requests cannot complete. */
  onStop(handler: (reason: string) => void): void;
}
