import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import { mayAccess } from '../auth/access.ts';
import type { Identity } from '../identity.ts';
import type { Authenticator } from '../auth/chain.ts';
import { Gates } from '../auth/gates.ts';
import type { Backend } from '../backends/backend.ts';
import { createBackend } from '../backends/select.ts';
import { userFieldsOf } from '../credentials/fields.ts';
import { connectSnippets } from '../clients/connect.ts';
import { createCredentialRoutes } from '../credentials/routes.ts';
import { CredentialStore } from '../store/credentials.ts';
import { Authorizer, CALLBACK_PATH, CLIENT_METADATA_PATH, oauthTargetOf } from '../oauth/authorizer.ts';
import { serverOAuthOf } from '../proxy/upstream/server-oauth.ts';
import { OAuthStore } from '../oauth/token-store.ts';
import { stateOptionsOf } from '../store/options.ts';
import { checkStateKeys } from '../store/check.ts';
import { StateStore } from '../store/state.ts';
import type { LoadedConfig, ReadResult } from '../config/load.ts';
import { readConfigFile } from '../config/load.ts';
import { ConfigError } from '../config/issues.ts';
import { BerthError } from '../errors.ts';
import type { LogFormat, Logger } from '../observe/log.ts';
import { createLogger } from '../observe/log.ts';
import { createMetrics } from '../observe/metrics.ts';
import type { Metrics } from '../observe/metrics.ts';
import { startTelemetry } from '../observe/trace/start.ts';
import type { Telemetry } from '../observe/trace/telemetry.ts';
import { useTelemetry } from '../observe/trace/telemetry.ts';
import { originPolicy } from '../http/guard.ts';
import { createProxyServer } from '../proxy/server.ts';
import { UpstreamPool } from '../proxy/upstream/pool.ts';
import { reportEvictions, SessionStore } from '../proxy/downstream/sessions.ts';
import type { RouteTable } from '../proxy/routes/table.ts';
import { RouteTables } from '../proxy/routes/table.ts';
import { UserHeaderResolver } from '../proxy/upstream/user-headers.ts';
import { Controller } from '../reconcile/controller.ts';
import { ConfigWatcher } from '../reconcile/watch.ts';
import { StartupReadiness } from './readiness.ts';
import { buildStatusReport } from './status-model.ts';
import { exitCode } from './output.ts';
import { printIssues } from './validate.ts';

export interface ServeOptions {
  readonly logFormat?: LogFormat;
  readonly logLevel?: string;
  /** Overrides listen.port (0 picks a free port); tests and containers use it. */
  readonly port?: number;
  /** Deadline for receiving a request's headers and body; default 30 s. */
  readonly requestTimeoutMs?: number;
}

/** A running berth: what tests and the CLI hold on to. */
export interface Berth {
  readonly url: string;
  readonly controller: Controller;
  readonly pool: UpstreamPool;
  readonly routes: RouteTables;
  readonly server: Server;
  readonly metrics: Metrics;
  readonly sessions: SessionStore;
  stop(): Promise<void>;
}

const SESSION_IDLE_TTL_MS = 30 * 60_000;
const KEEP_ALIVE_MS = 15_000;
const DRAIN_MS = 10_000;
/** service.version on telemetry. */
const BERTH_VERSION = '0.1.0';

/** Where berth listens: listen.host and listen.port, or the port the caller chose. */
interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Starts berth on a config file, the way Caddy loads one: arm the watch, read
 * the file, build every part, apply the config (routes go live once their
 * units are provisioned), and only then listen. The first request berth
 * answers meets the first route table, never an empty one; an edit made at
 * any moment after the read is applied. On failure, what was built is closed.
 */
export async function startBerth(file: string, options: ServeOptions = {}, logger: Logger = createLogger({ format: options.logFormat ?? 'json', ...(options.logLevel === undefined ? {} : { level: options.logLevel }) })): Promise<Berth> {
  // Armed before the first read: a change after that read is seen whenever it lands.
  const watcher = new ConfigWatcher({ file, logger });
  watcher.start();
  let parts: Parts | undefined;
  try {
    const first = readFirstConfig(file);
    const config = first.value.config;
    const listen = { host: config.listen?.host ?? '127.0.0.1', port: options.port ?? config.listen?.port ?? 8080 };
    // A taken port fails here, before any backend is touched.
    await probePort(listen);
    parts = await buildParts(file, first.value, watcher, options, logger);
    const applied = await parts.controller.start(first);
    if (applied.kind === 'rejected') throw new BerthError('config_invalid', applied.errors.join('\n'));
    const url = await listenOn(parts.server, listen);
    logger.info({ url, config: file }, 'berth listening');
    const { controller, pool, routes, server, metrics, sessions } = parts;
    return { url, controller, pool, routes, server, metrics, sessions, stop: stopping(parts, logger) };
  } catch (err) {
    if (parts === undefined) await watcher.close();
    else await stopping(parts, logger)();
    throw err;
  }
}

/** The config berth starts with; its problems end the start, with every issue. */
function readFirstConfig(file: string): ReadResult & { ok: true } {
  const first = readConfigFile(file);
  if (!first.ok) throw new ConfigError(first.issues);
  return first;
}

/** Everything a running berth is made of, built before it listens. */
interface Parts {
  readonly controller: Controller;
  readonly backend: Backend;
  readonly pool: UpstreamPool;
  readonly routes: RouteTables;
  readonly server: Server;
  readonly metrics: Metrics;
  readonly sessions: SessionStore;
  readonly sweep: NodeJS.Timeout;
  readonly telemetry: Telemetry | undefined;
}

async function buildParts(file: string, initial: LoadedConfig, watcher: ConfigWatcher, options: ServeOptions, logger: Logger): Promise<Parts> {
  const config = initial.config;
  // Before anything that carries MCP traffic exists; off, it loads nothing.
  const telemetry = await startTelemetry(config.telemetry, BERTH_VERSION);
  useTelemetry(telemetry);
  if (telemetry !== undefined) logger.info({ sampling: config.telemetry?.sampling, capture: config.telemetry?.capture }, 'telemetry on');
  // Rebuilt on every accepted reload; listen settings (publicUrl, adminGroup) stay as they started.
  const gates = new Gates(config.auth, { listen: config.listen, logger });
  const backend = await createBackend(initial, logger);
  // Per-user credentials live in the state file; the store opens even without a key (plain values only).
  const state = await StateStore.open({ ...stateOptionsOf(initial), onMissing: (problem) => logger.error({ problem }, 'state file removed while serving; changes refused') });
  const credentials = new CredentialStore(state, logger);
  // A wrong key stops berth here (state_key_wrong); single unreadable values are named now, not at a user's request.
  const unreadable = await checkStateKeys(state);
  for (const value of unreadable) logger.error({ value: value.path, code: value.code, problem: value.message }, 'state value unreadable with the configured keys; its user must enter it again, or configure its key');
  const labelSecret = await state.labelSecret().catch((err: unknown) => {
    // A read-only state directory still serves; per-user instances are then named anew after a restart.
    logger.warn({ err: (err as Error).message, path: state.path }, 'cannot keep the user label secret in the state file; using one for this run');
    return randomBytes(32).toString('base64url');
  });
  const publicUrl = config.listen?.publicUrl?.replace(/\/+$/, '');
  const authorizer = new Authorizer({ store: new OAuthStore(state, logger), logger, ...(publicUrl === undefined ? {} : { publicUrl }) });
  const userHeaders = new UserHeaderResolver(credentials);
  const pool = new UpstreamPool({
    backend,
    labelSecret,
    logger,
    drainMs: DRAIN_MS,
    credentials,
    oauth: (route) => serverOAuthOf(route, authorizer),
    ...(config.listen?.maxAnswerBytes === undefined ? {} : { maxMessageBytes: config.listen.maxAnswerBytes }),
  });
  const metrics = createMetrics({ sources: () => ({ sessionsByServer: () => sessions.countByServer(), instances: () => pool.status().map((u) => ({ unit: u.unit, state: u.state, restarts: u.instance.restarts })) }) });
  const sessions = new SessionStore({
    idleTtlMs: SESSION_IDLE_TTL_MS,
    ...(config.listen?.maxSessions === undefined ? {} : { maxSessions: config.listen.maxSessions }),
    ...(config.listen?.maxSessionsPerClient === undefined ? {} : { maxSessionsPerClient: config.listen.maxSessionsPerClient }),
    onEvict: reportEvictions(logger, metrics),
  });
  const routes = new RouteTables({
    upstreams: pool,
    sessions,
    logger,
    maxBodyBytes: config.listen?.maxBodyBytes ?? 4 * 1024 * 1024,
    ...(config.listen?.maxAnswerBytes === undefined ? {} : { maxMessageBytes: config.listen.maxAnswerBytes }),
    keepAliveMs: KEEP_ALIVE_MS,
    userHeaders,
    oauth: authorizer,
    ...(config.listen?.publicUrl === undefined ? {} : { publicUrl: config.listen.publicUrl }),
  });
  // Only the user whose values changed gets a new instance of that server, or new connections carrying their headers.
  credentials.onChange((change) => {
    void pool.renew(change.server, change.user, change.names);
    routes.current.handlers.get(change.server)?.renew?.(change.user);
  });
  const credentialRoutes = createCredentialRoutes({
    store: credentials,
    fields: (server) => (controller.desired === undefined ? undefined : userFieldsOf(controller.desired, server)),
    mayUse: (server, identity) => mayAccess(routes.current.handlers.get(server)?.route.access, identity),
    oauth: {
      authorizer,
      target: (server) => oauthTargetOf(routes.current.handlers.get(server)?.route),
      mayManageShared: (identity) => identity.groups.includes(config.listen?.adminGroup ?? 'admin'),
      ...(publicUrl === undefined ? {} : { publicUrl }),
    },
    ...(publicUrl === undefined ? {} : { publicUrl }),
    // What each MCP client needs to reach this route, in its own format; the key is asked for, never shown.
    snippets: (name) => connectSnippets({ base: publicUrl ?? urlOf(server), servers: [name], apiKey: (controller.config?.config.auth ?? []).some((p) => p.type === 'apiKey') }),
  });
  const controller: Controller = new Controller({ file, logger, metrics, backend, upstreams: pool, routes, auth: gates, watcher, onApplied: () => revokeUnadmitted(sessions, routes.current, gates.current.authenticator, logger) });
  const readiness = new StartupReadiness();
  const policy = originPolicy({ host: config.listen?.host ?? '127.0.0.1', ...(config.listen?.publicUrl === undefined ? {} : { publicUrl: config.listen.publicUrl }), ...(config.listen?.allowedOrigins === undefined ? {} : { allowedOrigins: config.listen.allowedOrigins }) });
  const server = createProxyServer({
    logger,
    metrics,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    state: {
      table: () => routes.current,
      originPolicy: () => policy,
      gate: () => gates.current,
      credentials: () => credentialRoutes,
      clientMetadata: () => (publicUrl?.startsWith('https://') === true ? authorizer.clientMetadata(`${publicUrl}${CLIENT_METADATA_PATH}`, `${publicUrl}${CALLBACK_PATH}`) : undefined),
      readiness: () => readiness.check(controller.desired, pool.status()),
      status: async () => {
        const missing = await state.check();
        const stateFile = { ...(missing === undefined ? {} : { problem: missing }), ...(unreadable.length === 0 ? {} : { unreadable: unreadable.map((v) => v.path) }) };
        return { ...(await buildStatusReport(controller, pool, backend, sessions, routes.current)), ...(Object.keys(stateFile).length === 0 ? {} : { stateFile }) };
      },
    },
  });
  const sweep = setInterval(() => sessions.expire(), 60_000).unref();
  return { controller, backend, pool, routes, server, metrics, sessions, sweep, telemetry };
}

/** Fails with the listener's error when the address is taken; port 0 always binds. */
async function probePort(listen: ListenAddress): Promise<void> {
  if (listen.port === 0) return;
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(listen.port, listen.host, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

async function listenOn(server: Server, listen: ListenAddress): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return urlOf(server);
}

/** The URL a listening server answers at. */
function urlOf(server: Server): string {
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Drains requests, then closes every part; once, however often it is called. */
function stopping(parts: Parts, logger: Logger): () => Promise<void> {
  const { controller, backend, pool, routes, server, sessions, sweep, telemetry } = parts;
  let stopped: Promise<void> | undefined;
  return () => {
    stopped ??= (async () => {
      logger.info('shutting down: draining requests');
      clearInterval(sweep);
      const closed = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      server.closeIdleConnections();
      sessions.closeAll();
      // Passed-through streams hold their connections open; ending them lets the drain finish now.
      for (const handler of routes.current.handlers.values()) if (handler.kind === 'passthrough') handler.passthrough.close();
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref())]);
      server.closeAllConnections();
      // Bounded: a unit stuck in its backend never holds shutdown.
      await controller.close();
      await routes.close();
      await pool.close();
      await backend.close(AbortSignal.timeout(DRAIN_MS));
      // Last: the spans and durations of everything that just ended go out.
      await telemetry?.shutdown();
      useTelemetry(undefined);
      logger.info('stopped');
    })();
    return stopped;
  };
}

/** `berth serve [FILE]`: runs until SIGTERM/SIGINT; SIGHUP reloads. */
export async function runServe(file: string, options: ServeOptions): Promise<number> {
  let berth: Berth;
  try {
    berth = await startBerth(file, options);
  } catch (err) {
    if (err instanceof ConfigError) {
      printIssues(err.issues);
      return exitCode.failed;
    }
    if (err instanceof BerthError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') throw new BerthError('listen_failed', `cannot listen: ${(err as Error).message}`);
    throw err;
  }
  process.stderr.write(`berth: serving ${file} at ${berth.url}/mcp/<server>\n`);
  return new Promise((resolve) => {
    process.on('SIGHUP', () => void berth.controller.reload('SIGHUP'));
    const shutdown = (): void => void berth.stop().then(() => resolve(exitCode.ok));
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}

/**
 * Once per reload: closes the sessions, and the passed-through streams, of
 * callers the new auth or access rules no longer admit. Their next request
 * would be refused anyway; this ends what they hold open (a GET stream keeps
 * delivering the server's messages) at once.
 */
function revokeUnadmitted(sessions: SessionStore, table: RouteTable, authenticator: Authenticator, logger: Logger): void {
  const vouched = new Map<Identity, boolean>(); // sessions of one API key share its identity object
  const vouches = (identity: Identity): boolean => {
    let ok = vouched.get(identity);
    if (ok === undefined) vouched.set(identity, (ok = authenticator.vouches(identity)));
    return ok;
  };
  const admitted = (server: string, identity: Identity): boolean => vouches(identity) && mayAccess(table.handlers.get(server)?.route.access, identity);
  let closed = sessions.revoke((s) => admitted(s.server, s.identity));
  // A passed-through remote's sessions are the remote's: its open streams are what berth holds.
  for (const [server, handler] of table.handlers) if (handler.kind === 'passthrough') closed += handler.passthrough.revoke((identity) => admitted(server, identity));
  if (closed > 0) logger.info({ closed }, 'sessions and streams closed: the new config no longer admits their users');
}
