// A composite server: one virtual MCP server made of several others, with a
// curated tool list. It is an in-process SDK Server behind an MessageChannel,
// so the Multiplexer serves it exactly like a stdio child; towards each
// component it is an SDK Client, connected as the user it serves.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolRequestSchema, CallToolResultSchema, ListToolsRequestSchema, ListToolsResultSchema, McpError, ProgressNotificationSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolRequest, CallToolResult, JSONRPCMessage, ProgressNotification, ServerNotification, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Missing } from '../../credentials/missing.ts';
import { missingCredentialsError } from '../../credentials/missing.ts';
import type { ComponentRoute, Route } from '../../desired/types.ts';
import { backoffDelay } from '../../backoff.ts';
import type { Logger } from '../../observe/log.ts';
import { ErrorCode } from '../../http/jsonrpc.ts';
import { ProxyError } from '../../http/proxy-error.ts';
import type { MessageChannel } from '../mux/channel.ts';

/** An SDK client-side Transport to the component `server`, as `user`. */
export type ConnectComponent = (server: string, user: string, signal: AbortSignal) => Promise<Transport>;

export interface CompositeOptions {
  readonly route: Route & { kind: 'composite' };
  readonly user: string;
  readonly connect: ConnectComponent;
  /** Whether the user may reach a component now (access rules); others are neither listed nor connected. */
  readonly reachable?: (component: ComponentRoute) => boolean;
  /** A component's /connect page, named to a user it needs credentials or an authorization from. */
  readonly connectUrl?: (server: string) => string;
  readonly logger: Logger;
}

/** A component left out is tried again in the background, from its timeout up to this. */
const PROBE_MAX_MS = 30_000;
/** The SDK needs a request timeout; calls are bounded by the caller's cancellation, like direct ones. */
const CALL_TIMEOUT_MS = 60 * 60_000;
/** What a progress notification carries besides its token. */
type ProgressParams = Omit<ProgressNotification['params'], 'progressToken'>;
/** A component paginating further than this is treated as broken. */
const MAX_LIST_PAGES = 1_000;
const VERSION = '0.1.0';

/** Whether a component's tools are served, as status shows it. */
export interface ComponentHealth {
  readonly server: string;
  readonly state: 'up' | 'down';
  readonly lastError?: string;
  readonly since?: string;
}

/** Where an exposed tool comes from. */
export interface ToolTarget {
  /** Index into the composite's components. */
  readonly component: number;
  readonly original: string;
}

export interface CuratedTools {
  readonly tools: readonly Tool[];
  readonly targets: ReadonlyMap<string, ToolTarget>;
}

export interface ToolCollision {
  readonly name: string;
  readonly kept: ToolTarget;
  readonly dropped: ToolTarget;
}

/**
 * A component's tools as the composite exposes them: `include` and `exclude`
 * (original names), then `rename`, then `prefix`; `descriptions` keyed by the
 * original name. Everything else about a tool (schemas, annotations) is kept.
 */
export function curateComponentTools(component: ComponentRoute, tools: readonly Tool[]): { tool: Tool; original: string }[] {
  const { include, exclude, rename, descriptions } = component.tools;
  const included = include === undefined ? undefined : new Set(include);
  const excluded = new Set(exclude ?? []);
  const out: { tool: Tool; original: string }[] = [];
  for (const tool of tools) {
    const original = tool.name;
    if ((included !== undefined && !included.has(original)) || excluded.has(original)) continue;
    const name = component.prefix + (Object.hasOwn(rename, original) ? rename[original]! : original);
    const description = Object.hasOwn(descriptions, original) ? descriptions[original] : tool.description;
    out.push({ tool: { ...tool, name, ...(description === undefined ? {} : { description }) }, original });
  }
  return out;
}

/** Joins curated component lists in component order; on a name collision the first wins. */
export function mergeCuratedTools(lists: readonly (readonly { tool: Tool; original: string }[])[]): CuratedTools & { collisions: ToolCollision[] } {
  const tools: Tool[] = [];
  const targets = new Map<string, ToolTarget>();
  const collisions: ToolCollision[] = [];
  lists.forEach((list, component) => {
    for (const { tool, original } of list) {
      const kept = targets.get(tool.name);
      if (kept !== undefined) {
        collisions.push({ name: tool.name, kept, dropped: { component, original } });
        continue;
      }
      targets.set(tool.name, { component, original });
      tools.push(tool);
    }
  });
  return { tools, targets, collisions };
}

/** An error the SDK Server answers with exactly this JSON-RPC code and message. */
class RpcError extends Error {
  readonly code: number;
  readonly data?: unknown;

  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    if (data !== undefined) this.data = data;
  }
}

interface Slot {
  readonly index: number;
  readonly component: ComponentRoute;
  connection: Promise<Client> | undefined;
  /** Whether a connection was up before: a new one may come with other tools. */
  connectedBefore: boolean;
  /** Set while the component's tools are left out: why, and the background retry. */
  down: { reason: string; since: string; probe: NodeJS.Timeout | undefined; failures: number; missing: Missing | undefined } | undefined;
}

/**
 * The channel the composite's Multiplexer sits on. Components are connected
 * on first use, once, and again on the first use after their connection
 * closed. The curated list is cached until a component reports list_changed
 * or comes back after a drop; a list that misses a broken component is served
 * but not cached, so the next listing tries that component again.
 */
class CompositeChannel implements MessageChannel {
  readonly #o: CompositeOptions;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #downstream: InMemoryTransport;
  readonly #upstream: InMemoryTransport;
  readonly #slots: Slot[];
  readonly #closing = new AbortController();
  readonly #handlers = { message: [] as ((m: unknown) => void)[], start: [] as (() => void)[], stop: [] as ((reason: string) => void)[] };
  #started = false;
  #stopped = false;
  #generation = 0;
  #cache: CuratedTools | undefined;
  /** Which components were reachable when the cache was built; a change in the user's access rebuilds it. */
  #cacheReach = '';
  #building: { generation: number; promise: Promise<CuratedTools> } | undefined;
  /** Which component each tool name ever listed came from: a call to a left-out one says why. */
  readonly #lastKnown = new Map<string, number>();
  /** Calls in flight that asked for progress, by the token the component sees. */
  readonly #progress = new Map<string, (params: ProgressParams) => void>();
  #nextToken = 1;

  constructor(options: CompositeOptions) {
    this.#o = options;
    this.#log = options.logger.child({ server: options.route.server, user: options.user });
    this.#slots = options.route.components.map((component, index) => ({ index, component, connection: undefined, connectedBefore: false, down: undefined }));
    this.#server = new Server({ name: options.route.server, version: VERSION }, { capabilities: { tools: { listChanged: true } } });
    this.#server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [...(await this.#curated()).tools] }));
    this.#server.setRequestHandler(CallToolRequestSchema, (request, extra) => this.#call(request, extra));
    [this.#downstream, this.#upstream] = InMemoryTransport.createLinkedPair();
    this.#downstream.onmessage = (m) => this.#handlers.message.forEach((h) => h(m));
    this.#downstream.onclose = () => this.#stop('composite closed');
    void this.#downstream.start();
    this.#server.connect(this.#upstream).then(
      () => {
        if (this.#stopped) return;
        this.#started = true;
        this.#handlers.start.forEach((h) => h());
      },
      (err: unknown) => this.#log.error({ err: (err as Error).message }, 'composite server failed to start'),
    );
  }

  send(message: JSONRPCMessage): boolean {
    if (!this.#started || this.#stopped) return false;
    this.#downstream.send(message).catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'send to composite failed'));
    return true;
  }

  onMessage(handler: (message: unknown) => void): void {
    this.#handlers.message.push(handler);
  }

  onStart(handler: () => void): void {
    this.#handlers.start.push(handler);
    // Registered after the server came up: it is up now.
    if (this.#started && !this.#stopped) queueMicrotask(handler);
  }

  onStop(handler: (reason: string) => void): void {
    this.#handlers.stop.push(handler);
  }

  /** Closes every component client and the server; idempotent. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    for (const slot of this.#slots) clearTimeout(slot.down?.probe);
    this.#closing.abort(this.#closingError());
    const clients = await Promise.allSettled(this.#slots.map((slot) => slot.connection ?? Promise.reject(new Error('not connected'))));
    await Promise.allSettled(clients.map((c) => (c.status === 'fulfilled' ? c.value.close() : undefined)));
    await this.#server.close().catch(() => undefined);
    this.#stop('composite closed');
  }

  #stop(reason: string): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#handlers.stop.forEach((h) => h(reason));
  }

  /** The curated list: cached, or built once for all concurrent askers. */
  #curated(): Promise<CuratedTools> {
    const reach = this.#slots.map((slot) => (this.#reachable(slot) ? '1' : '0')).join('');
    if (reach !== this.#cacheReach) {
      this.#cacheReach = reach;
      this.#generation++;
      this.#cache = undefined;
    }
    if (this.#cache !== undefined) return Promise.resolve(this.#cache);
    if (this.#building?.generation !== this.#generation) {
      const building = { generation: this.#generation, promise: this.#build() };
      this.#building = building;
      void building.promise.finally(() => {
        if (this.#building === building) this.#building = undefined;
      });
    }
    return this.#building!.promise;
  }

  async #build(): Promise<CuratedTools> {
    const generation = this.#generation;
    const lists = await Promise.all(this.#slots.map((slot) => this.#listComponent(slot)));
    const merged = mergeCuratedTools(lists.map((l) => l ?? []));
    for (const c of merged.collisions) {
      this.#log.warn(
        { tool: c.name, kept: `${this.#slots[c.kept.component]!.component.server}.${c.kept.original}`, dropped: `${this.#slots[c.dropped.component]!.component.server}.${c.dropped.original}` },
        'composite tool name collision; the first component keeps the name',
      );
    }
    const curated: CuratedTools = { tools: merged.tools, targets: merged.targets };
    if (generation === this.#generation && lists.every((l) => l !== undefined)) this.#cache = curated;
    return curated;
  }

  /** One component's curated tools; undefined (logged) when it cannot be reached or listed. */
  async #listComponent(slot: Slot): Promise<{ tool: Tool; original: string }[] | undefined> {
    if (!this.#reachable(slot)) return [];
    try {
      const client = await this.#clientOf(slot);
      if (client.getServerCapabilities()?.tools === undefined) return [];
      const tools: Tool[] = [];
      const seen = new Set<string>();
      let cursor: string | undefined;
      for (let page = 0; ; page++) {
        const result = await client.request(
          { method: 'tools/list', params: cursor === undefined ? {} : { cursor } },
          ListToolsResultSchema,
          { signal: this.#closing.signal, timeout: slot.component.timeoutMs },
        );
        tools.push(...result.tools);
        cursor = result.nextCursor;
        if (cursor === undefined) break;
        if (seen.has(cursor) || page + 1 >= MAX_LIST_PAGES) throw new Error(`tools/list pagination does not end (cursor ${cursor})`);
        seen.add(cursor);
      }
      const curated = curateComponentTools(slot.component, tools);
      for (const { tool } of curated) this.#lastKnown.set(tool.name, slot.index);
      this.#up(slot);
      return curated;
    } catch (err) {
      if (!this.#closing.signal.aborted) this.#down(slot, (err as Error).message, err instanceof ProxyError ? err.missing : undefined);
      return undefined;
    }
  }

  /** Component health for status: the ones left out, and why. */
  health(): readonly ComponentHealth[] {
    return this.#slots.map((slot) => ({
      server: slot.component.server,
      state: slot.down === undefined ? 'up' : 'down',
      ...(slot.down === undefined ? {} : { lastError: slot.down.reason, since: slot.down.since }),
    }));
  }

  /** Leaves a component out and keeps trying it in the background; its return is announced. */
  #down(slot: Slot, reason: string, missing: Missing | undefined): void {
    if (slot.down === undefined) {
      this.#log.warn({ component: slot.component.server, index: slot.index, err: reason }, 'composite component unavailable; its tools are left out');
      slot.down = { reason, since: new Date().toISOString(), probe: undefined, failures: 1, missing };
    } else {
      slot.down.reason = reason;
      slot.down.failures += 1;
      slot.down.missing = missing;
    }
    const down = slot.down;
    clearTimeout(down.probe);
    down.probe = setTimeout(() => void this.#listComponent(slot), backoffDelay(down.failures, { initialMs: slot.component.timeoutMs, maxMs: PROBE_MAX_MS }));
    down.probe.unref();
  }

  #up(slot: Slot): void {
    const down = slot.down;
    if (down === undefined) return;
    clearTimeout(down.probe);
    slot.down = undefined;
    this.#log.info({ component: slot.component.server, index: slot.index }, 'composite component is back; its tools are listed again');
    this.#toolsChanged();
  }

  async #call(request: CallToolRequest, extra: { signal: AbortSignal; sendNotification: (n: ServerNotification) => Promise<void> }): Promise<CallToolResult> {
    const { name, arguments: args, _meta } = request.params;
    const target = (await this.#curated()).targets.get(name);
    if (target === undefined) {
      const home = this.#slots[this.#lastKnown.get(name) ?? -1];
      if (home?.down?.missing !== undefined) throw this.#missing(home.down.missing, `tool ${name} comes from component ${home.component.server}`);
      if (home?.down !== undefined) throw new RpcError(ErrorCode.upstreamUnavailable, `tool ${name} comes from component ${home.component.server}, which is unavailable: ${home.down.reason}`);
      // A tool never listed may well be one of a component the user has not authorized yet: that one is named.
      const waiting = this.#slots.find((s) => s.down?.missing !== undefined && this.#reachable(s));
      if (waiting?.down?.missing !== undefined) throw this.#missing(waiting.down.missing, `unknown tool ${name}; component ${waiting.component.server} lists no tools yet`);
      throw new RpcError(ErrorCode.invalidParams, `Unknown tool: ${name}`);
    }
    const slot = this.#slots[target.component]!;
    if (!this.#reachable(slot)) throw new RpcError(ErrorCode.invalidParams, `Unknown tool: ${name}`);
    let client: Client;
    try {
      client = await this.#clientOf(slot);
    } catch (err) {
      if (err instanceof ProxyError && err.missing !== undefined) throw this.#missing(err.missing, `tool ${name} comes from component ${slot.component.server}`);
      throw new RpcError(ErrorCode.upstreamUnavailable, `component ${slot.component.server} is unavailable: ${(err as Error).message}`);
    }
    // Progress is routed here, not by the SDK's onprogress: the SDK drops the
    // last progress when the result arrives in the same tick (it dispatches
    // notifications a microtask late). Each call gets a token of its own.
    const { progressToken, ...meta } = _meta ?? {};
    const ownToken = progressToken === undefined ? undefined : `composite-${this.#nextToken++}`;
    let progressSent = Promise.resolve();
    if (ownToken !== undefined && progressToken !== undefined) {
      this.#progress.set(ownToken, (params) => {
        const notification = { method: 'notifications/progress' as const, params: { ...params, progressToken } };
        progressSent = progressSent.then(() => extra.sendNotification(notification)).catch(() => undefined);
      });
      meta['progressToken'] = ownToken;
    }
    const params = {
      name: target.original,
      ...(args === undefined ? {} : { arguments: args }),
      ...(Object.keys(meta).length === 0 ? {} : { _meta: meta }),
    };
    try {
      const result = await client.request({ method: 'tools/call', params }, CallToolResultSchema, { signal: extra.signal, timeout: CALL_TIMEOUT_MS });
      // Progress goes out in order and before the result: clients drop progress for a finished request.
      await progressSent;
      return result;
    } catch (err) {
      // Pass the component's JSON-RPC error on as it was, without the SDK's "MCP error <code>: " prefix.
      if (err instanceof McpError) throw new RpcError(err.code, err.message.replace(/^MCP error -?\d+: /, ''), err.data);
      // berth's own refusals keep their JSON-RPC code and stable code instead of becoming internal errors.
      if (err instanceof ProxyError) throw new RpcError(err.rpcCode, err.message, { code: err.code });
      throw err;
    } finally {
      if (ownToken !== undefined) this.#progress.delete(ownToken);
    }
  }

  /** A component waits for the user's credentials or authorization: the error names it and its /connect page. */
  #missing(missing: Missing, what: string): RpcError {
    const page = this.#o.connectUrl?.(missing.server) ?? `/connect/${missing.server}`;
    const answer = missingCredentialsError(missing, page, 'message');
    if (answer.kind !== 'error') throw new Error('a plain prompt is always an error');
    return new RpcError(answer.error.code, `${what}: ${answer.error.message}`, { ...answer.error.data, component: missing.server });
  }

  #closingError(): ProxyError {
    return new ProxyError('upstream_closed', `composite ${this.#o.route.server} is closing`);
  }

  #reachable(slot: Slot): boolean {
    return this.#o.reachable?.(slot.component) ?? true;
  }

  #clientOf(slot: Slot): Promise<Client> {
    if (slot.connection === undefined) {
      const connection: Promise<Client> = this.#connect(slot, () => {
        if (slot.connection !== connection) return;
        slot.connection = undefined;
        // Reconnected on next use, not now: a per-user instance stopped for idleness stays stopped.
        if (!this.#closing.signal.aborted) this.#log.info({ component: slot.component.server, index: slot.index }, 'composite component disconnected');
      });
      slot.connection = connection;
      connection.catch(() => {
        if (slot.connection === connection) slot.connection = undefined;
      });
    }
    return slot.connection;
  }

  async #connect(slot: Slot, onLost: () => void): Promise<Client> {
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(slot.component.timeoutMs)]);
    const transport = await this.#o.connect(slot.component.server, this.#o.user, signal);
    const client = new Client({ name: `berth-composite/${this.#o.route.server}`, version: VERSION }, { capabilities: {} });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.#toolsChanged());
    client.setNotificationHandler(ProgressNotificationSchema, (n) => {
      const { progressToken, ...params } = n.params;
      this.#progress.get(String(progressToken))?.(params);
    });
    try {
      await client.connect(transport, { signal, timeout: slot.component.timeoutMs });
    } catch (err) {
      await client.close().catch(() => undefined);
      throw err;
    }
    if (this.#closing.signal.aborted) {
      await client.close().catch(() => undefined);
      throw this.#closingError();
    }
    client.onclose = onLost;
    this.#log.debug({ component: slot.component.server, index: slot.index }, 'composite component connected');
    if (slot.connectedBefore) this.#toolsChanged();
    slot.connectedBefore = true;
    return client;
  }

  /** A component's tools changed (or may have): drop the cache and tell the composite's clients. */
  #toolsChanged(): void {
    this.#generation++;
    this.#cache = undefined;
    if (!this.#started || this.#stopped) return;
    this.#server.sendToolListChanged().catch((err: unknown) => this.#log.debug({ err: (err as Error).message }, 'tools/list_changed not sent'));
  }
}

/**
 * The upstream channel of one user's composite: put a Multiplexer on it. It
 * reports onStart once its in-process server is connected.
 */
export function createCompositeChannel(options: CompositeOptions): MessageChannel & { close(): Promise<void>; health(): readonly ComponentHealth[] } {
  return new CompositeChannel(options);
}
