// What each runtime runs and how it listens: the one mapping from a unit's
// spec to a command line, shared by every backend, so a server behaves the
// same on the host, in a container and in a pod.
import type { Transport, UnitSpec } from '../desired/types.ts';
import { BackendError } from './backend.ts';

/** Where a server in a container listens unless told otherwise: `berth bridge`, and an HTTP command given it in PORT. */
export const SERVE_PORT = 8080;
export const DEFAULT_MCP_PATH = '/mcp';

/** How a server that is not a container image is started: its command line and working directory. */
export function commandFor(spec: UnitSpec): { command: string; args: string[]; cwd?: string } {
  switch (spec.runtime) {
    case 'npx':
      return { command: 'npx', args: ['-y', spec.package, ...spec.args] };
    case 'uvx':
      return { command: 'uvx', args: [spec.package, ...spec.args] };
    case 'command':
      return spec.cwd === undefined ? { command: spec.command, args: [...spec.args] } : { command: spec.command, args: [...spec.args], cwd: spec.cwd };
    case 'container':
      throw new BackendError('invalid_spec', `the local backend cannot run runtime container (image ${spec.image}); use a docker or kubernetes backend`, { retryable: false });
  }
}

/** A `command` server that serves MCP over HTTP itself, on the port it is given in PORT; undefined for stdio servers. */
export function httpCommandOf(spec: UnitSpec): { transport: Transport; path: string } | undefined {
  if (spec.runtime !== 'command' || spec.transport === undefined) return undefined;
  return { transport: spec.transport, path: spec.path ?? DEFAULT_MCP_PATH };
}

/** What a container backend runs for one instance. */
export interface Workload {
  readonly image: string;
  /** Replaces the image's entrypoint; absent, the image's own runs (berth's, for `bridge`). */
  readonly entrypoint?: readonly string[];
  readonly args: readonly string[];
  readonly workingDir?: string;
  /** Where the server listens inside: port, path and transport. */
  readonly port: number;
  readonly path: string;
  readonly transport: Transport;
  /** What the runtime needs; the server's own values are added over it. */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * A container server runs its image as is. Every other runtime runs in
 * `runtimeImage` (berth's own or one built from it): an HTTP command directly,
 * told its port in PORT; a stdio server behind `berth bridge`. `listen` is the
 * loopback port a backend assigns on a shared network namespace (Docker's host
 * network); without it the server listens on every address of its own.
 */
export function workloadOf(spec: UnitSpec, runtimeImage: string, listen?: number): Workload {
  const assigned: Record<string, string> = listen === undefined ? {} : { PORT: String(listen), HOST: '127.0.0.1' };
  if (spec.runtime === 'container') return { image: spec.image, args: spec.args, port: listen ?? spec.port, path: spec.path, transport: spec.transport, env: assigned };
  const port = listen ?? SERVE_PORT;
  const { command, args, cwd } = commandFor(spec);
  // The root filesystem is read-only: npm and uv keep their caches under HOME.
  const base = { image: runtimeImage, port, ...(cwd?.startsWith('/') === true ? { workingDir: cwd } : {}) };
  const http = httpCommandOf(spec);
  if (http !== undefined) return { ...base, entrypoint: [command, ...args], args: [], ...http, env: { HOME: '/tmp', PORT: String(port), ...assigned } };
  const host = listen === undefined ? '0.0.0.0' : '127.0.0.1';
  return { ...base, args: ['bridge', '--host', host, '--port', String(port), '--', command, ...args], path: DEFAULT_MCP_PATH, transport: 'streamable-http', env: { HOME: '/tmp', ...assigned } };
}
