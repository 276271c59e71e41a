import type { ConfigIssue, KeyPath } from '../config/issues.ts';
import { formatKeyPath } from '../config/issues.ts';
import type { Positions } from '../config/source.ts';

// The one shape every client format reads into and writes from: what an MCP
// client's config says about a server, with each client's variable syntax
// already parsed into references.

/** A reference a client fills in when it starts a server. */
export type Reference =
  | { readonly kind: 'env'; readonly name: string; readonly fallback?: string }
  | { readonly kind: 'file'; readonly path: string }
  /** A value the client asks its user for (VS Code's `inputs`, a registry input without a value). */
  | { readonly kind: 'prompt'; readonly id: string; readonly description?: string; readonly secret: boolean; readonly required: boolean; readonly fallback?: string }
  /** Something only that client can fill in (`${workspaceFolder}`, `${command:…}`): reported, never guessed. */
  | { readonly kind: 'unsupported'; readonly text: string; readonly why: string };

/** A string value: literal text and references, in order. */
export type Parts = readonly (string | Reference)[];

/** A value with where it was written, for issues. */
export interface Field {
  readonly parts: Parts;
  readonly path: KeyPath;
  /** The source says this value is a secret (registry `isSecret`), whatever its name. */
  readonly secret?: boolean;
}

/** A name → value list (environment, headers), in the order written. */
export type Fields = readonly (readonly [string, Field])[];

interface Common {
  /** The name the client gives the server. */
  readonly name: string;
  /** Where the server's entry starts, for issues about the whole entry. */
  readonly path: KeyPath;
  readonly description?: string;
}

export interface StdioServer extends Common {
  readonly kind: 'stdio';
  readonly command: Field;
  readonly args: readonly Field[];
  readonly env: Fields;
  readonly cwd?: Field;
}

export interface HttpServer extends Common {
  readonly kind: 'http';
  readonly transport: 'streamable-http' | 'sse';
  readonly url: Field;
  readonly headers: Fields;
}

/** An OCI image that serves MCP over HTTP (registry `oci` packages). */
export interface ContainerServer extends Common {
  readonly kind: 'container';
  readonly image: string;
  /** Where the server listens inside the container: berth takes its port and path. */
  readonly url: Field;
  readonly transport: 'streamable-http' | 'sse';
  /** `docker run` options the package asks for; berth maps `-e` and names the rest. */
  readonly runtimeArgs: readonly Field[];
  readonly args: readonly Field[];
  readonly env: Fields;
}

/** A registry package berth cannot run (mcpb, an unknown registry type): named in the report, never dropped silently. */
export interface UnsupportedServer extends Common {
  readonly kind: 'unsupported';
  readonly why: string;
}

export type ClientServer = StdioServer | HttpServer | ContainerServer | UnsupportedServer;

export function literal(text: string, path: KeyPath): Field {
  return { parts: text === '' ? [] : [text], path };
}

/** The text of a value without references, else undefined. */
export function plainText(parts: Parts): string | undefined {
  return parts.every((p) => typeof p === 'string') ? parts.join('') : undefined;
}

/** A problem found while reading a client config. An error leaves its server out; a warning says what was changed. */
export interface ImportIssue extends ConfigIssue {
  readonly severity: 'error' | 'warning';
}

/** Records an issue at a key path of the file being read: at its value, or at its key when the issue is about the key itself. */
export type Report = (severity: ImportIssue['severity'], path: KeyPath, code: string, message: string, hint?: string, at?: 'value' | 'key') => void;

export function reporter(file: string, positions: Positions, into: ImportIssue[]): Report {
  return (severity, path, code, message, hint, at = 'value') => {
    const pos = at === 'key' ? positions.key(path) : positions.value(path);
    into.push({ severity, code, file, line: pos.line, col: pos.col, path: formatKeyPath(path), message, ...(hint === undefined ? {} : { hint }) });
  };
}

/** `berth-api-key` → `BERTH_API_KEY`: a prompt's id or a header's name as an environment variable name. */
export function envName(id: string): string {
  const name = id.toUpperCase().replace(/[^A-Z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  return /^[A-Z_]/.test(name) ? name : `_${name}`;
}
