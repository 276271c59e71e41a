// A Kubernetes API server on loopback for tests: the subset berth uses, with
// the real semantics (server-side apply with field managers, resourceVersion
// and 409s, label selectors, watches with bookmarks and 410 Gone, status
// subresources, RBAC answers, quotas). A scripted kubelet runs pods.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIPv6 } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { parseCidr } from '../../../src/net/cidr.ts';
import type { JsonObject, Ownership } from './fields.ts';
import { applyFields, describePath, isObject, updateFields } from './fields.ts';
import { isTerminating, Kubelet, markTerminating } from './kubelet.ts';
import type { ResourceType, WatchEvent } from './store.ts';
import { apiVersionOf, RESOURCES, Store } from './store.ts';

/** One request the server answered (or refused): when, which verb on which resource, with which label selector. */
export interface Request {
  readonly verb: string;
  readonly plural: string;
  readonly labelSelector: string;
  readonly at: number;
}

export interface Write {
  readonly method: string;
  readonly kind: string;
  readonly name: string;
}

interface Route {
  readonly type: ResourceType;
  readonly namespace: string;
  readonly name?: string;
  readonly sub?: string;
}

export class FakeKube {
  readonly store = new Store();
  readonly kubelet: Kubelet;
  /** Every write request, in order: what "zero writes" is measured against. */
  readonly writes: Write[] = [];
  /** Every request to a resource, in order, refused ones too: how often a client retries. */
  readonly requests: Request[] = [];
  /** `verb:plural` pairs the test forbids; requests and access reviews both see it. */
  readonly denied = new Set<string>();
  /** Most objects of a resource (`count/<plural>` quota); creating more is 403 "exceeded quota". */
  readonly quota = new Map<string, number>();
  bookmarkMs = 200;
  readonly #server: Server;
  readonly #watches = new Set<ServerResponse>();

  constructor() {
    this.kubelet = new Kubelet(this.store);
    this.#server = createServer((req, res) => void this.#handle(req, res).catch((err: unknown) => send(res, 500, status(500, 'InternalError', String(err)))));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig (as @kubernetes/client-node's loadFromOptions takes it) pointing at this server. */
  kubeconfig(): { clusters: object[]; users: object[]; contexts: object[]; currentContext: string } {
    return {
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester', namespace: 'default' }],
      currentContext: 'fake',
    };
  }

  /** Ends every open watch, as an API server restart or a load balancer timeout does. */
  dropWatches(): void {
    for (const res of this.#watches) res.destroy();
    this.#watches.clear();
  }

  writesOf(kind?: string): Write[] {
    return this.writes.filter((w) => kind === undefined || w.kind === kind);
  }

  async close(): Promise<void> {
    this.kubelet.stop();
    this.dropWatches();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const body = method === 'GET' || method === 'DELETE' ? '' : await readBody(req);
    if (url.pathname === '/api') return send(res, 200, { kind: 'APIVersions', versions: ['v1'] });
    if (url.pathname === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews' && method === 'POST') return this.#review(res, JSON.parse(body) as JsonObject);
    const discovery = this.#discovery(url.pathname);
    if (discovery !== undefined) return send(res, 200, discovery);
    const route = parseRoute(url.pathname);
    if (route === undefined) return send(res, 404, status(404, 'NotFound', `the server could not find the requested resource ${url.pathname}`));
    const verb = verbOf(method, route, url);
    this.requests.push({ verb, plural: route.type.plural, labelSelector: url.searchParams.get('labelSelector') ?? '', at: performance.now() });
    if (this.denied.has(`${verb}:${route.type.plural}`)) {
      return send(res, 403, status(403, 'Forbidden', `${route.type.plural}${route.type.group === '' ? '' : `.${route.type.group}`} is forbidden: User "tester" cannot ${verb} resource "${route.type.plural}" in API group "${route.type.group}" in the namespace "${route.namespace}"`));
    }
    if (method !== 'GET') this.writes.push({ method: method === 'PATCH' && (req.headers['content-type'] ?? '').includes('apply-patch') ? 'APPLY' : method, kind: route.type.kind, name: route.name ?? '' });
    if (route.sub === 'log') return this.#log(res, route, url);
    if (method === 'GET' && route.name === undefined) return url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1' ? this.#watch(req, res, route, url) : this.#list(res, route, url);
    if (method === 'GET') {
      const stored = this.store.get(route.type.plural, route.namespace, route.name ?? '');
      return stored === undefined ? send(res, 404, notFound(route)) : send(res, 200, stored.object);
    }
    if (method === 'DELETE' && route.type.plural === 'pods') return this.#deletePod(res, route, url);
    if (method === 'DELETE') {
      const deleted = this.store.delete(route.type, route.namespace, route.name ?? '');
      return deleted === undefined ? send(res, 404, notFound(route)) : send(res, 200, deleted);
    }
    const manager = url.searchParams.get('fieldManager') ?? 'unknown';
    const content = req.headers['content-type'] ?? '';
    const input = (content.includes('yaml') ? parseYaml(body) : JSON.parse(body)) as JsonObject;
    const invalid = method === 'PATCH' && content.includes('merge-patch') ? undefined : invalidity(route, input);
    if (invalid !== undefined) return send(res, 422, invalid);
    if (method === 'POST') return this.#create(res, route, input, manager);
    if (route.sub === 'status') return this.#writeStatus(res, route, input, method === 'PUT', manager);
    if (method === 'PATCH' && content.includes('apply-patch')) return this.#apply(res, route, input, manager, url.searchParams.get('force') === 'true');
    if (method === 'PATCH' && content.includes('merge-patch')) return this.#update(res, route, (live) => mergePatch(live, input), manager);
    if (method === 'PUT') return this.#update(res, route, () => input, manager, (input.metadata as JsonObject | undefined)?.resourceVersion as string | undefined);
    return send(res, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format: ${content}`));
  }

  #discovery(pathname: string): JsonObject | undefined {
    const match = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(pathname);
    if (match === null) return pathname === '/apis' ? { kind: 'APIGroupList', groups: [] } : undefined;
    const [group, version] = match[1] !== undefined ? ['', match[1]] : [match[2] ?? '', match[3] ?? ''];
    const types = RESOURCES.filter((t) => t.group === group && t.version === version);
    if (types.length === 0) return undefined;
    return {
      kind: 'APIResourceList',
      groupVersion: group === '' ? version : `${group}/${version}`,
      resources: types.map((t) => ({ name: t.plural, singularName: t.kind.toLowerCase(), namespaced: t.namespaced, kind: t.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] })),
    };
  }

  #review(res: ServerResponse, review: JsonObject): void {
    const attributes = ((review.spec as JsonObject | undefined)?.resourceAttributes ?? {}) as JsonObject;
    const allowed = !this.denied.has(`${String(attributes.verb)}:${String(attributes.resource)}`);
    send(res, 201, { ...review, status: { allowed, ...(allowed ? {} : { reason: 'no RBAC rule allows it' }) } });
  }

  #list(res: ServerResponse, route: Route, url: URL): void {
    const selector = parseSelector(url.searchParams.get('labelSelector') ?? '');
    const items = this.store.list(route.type.plural, route.namespace).map((s) => s.object).filter((o) => matches(selector, labelsOf(o)));
    send(res, 200, { apiVersion: apiVersionOf(route.type), kind: `${route.type.kind}List`, metadata: { resourceVersion: String(this.store.resourceVersion) }, items });
  }

  #watch(req: IncomingMessage, res: ServerResponse, route: Route, url: URL): void {
    const selector = parseSelector(url.searchParams.get('labelSelector') ?? '');
    const rvText = url.searchParams.get('resourceVersion') ?? '';
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const write = (type: string, object: JsonObject): void => void res.write(`${JSON.stringify({ type, object })}\n`);
    const relevant = (e: WatchEvent): boolean => e.plural === route.type.plural && (e.object.metadata as JsonObject).namespace === route.namespace && matches(selector, labelsOf(e.object));
    if (rvText === '' || rvText === '0') {
      for (const stored of this.store.list(route.type.plural, route.namespace)) if (matches(selector, labelsOf(stored.object))) write('ADDED', stored.object);
    } else {
      const backlog = this.store.since(Number(rvText));
      if (backlog === undefined) {
        write('ERROR', status(410, 'Expired', `too old resource version: ${rvText} (${this.store.resourceVersion})`));
        res.end();
        return;
      }
      for (const event of backlog) if (relevant(event)) write(event.type, event.object);
    }
    const onEvent = (event: WatchEvent): void => {
      if (relevant(event)) write(event.type, event.object);
    };
    this.store.on('event', onEvent);
    const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true'
      ? setInterval(() => write('BOOKMARK', { apiVersion: apiVersionOf(route.type), kind: route.type.kind, metadata: { resourceVersion: String(this.store.resourceVersion) } }), this.bookmarkMs).unref()
      : undefined;
    this.#watches.add(res);
    const stop = (): void => {
      this.store.off('event', onEvent);
      clearInterval(bookmarks);
      this.#watches.delete(res);
    };
    req.on('close', stop);
    res.on('close', stop);
  }

  #create(res: ServerResponse, route: Route, input: JsonObject, manager: string): void {
    const name = String((input.metadata as JsonObject | undefined)?.name ?? '');
    if (this.store.get(route.type.plural, route.namespace, name) !== undefined) return send(res, 409, status(409, 'AlreadyExists', `${route.type.plural} "${name}" already exists`));
    const refusal = this.#quotaRefusal(route.type, name);
    if (refusal !== undefined) return send(res, 403, refusal);
    const owners: Ownership = new Map();
    const { status: _ignored, ...object } = input;
    updateFields({}, object, owners, manager);
    this.store.put(route.type, route.namespace, object, owners);
    send(res, 201, this.store.get(route.type.plural, route.namespace, name)?.object ?? {});
  }

  #apply(res: ServerResponse, route: Route, input: JsonObject, manager: string, force: boolean): void {
    const name = route.name ?? '';
    const stored = this.store.get(route.type.plural, route.namespace, name);
    if (stored === undefined) {
      const refusal = this.#quotaRefusal(route.type, name);
      if (refusal !== undefined) return send(res, 403, refusal);
    }
    const owners: Ownership = new Map([...(stored?.owners ?? new Map())].map(([m, o]) => [m, { ...o, paths: new Set(o.paths) }]));
    const { status: _ignored, ...applied } = input;
    const result = applyFields(stored?.object, applied, owners, manager, force);
    if (!result.ok) {
      const list = result.conflicts.map((c) => `conflict with "${c.manager}": ${describePath(c.path)}`);
      return send(res, 409, status(409, 'Conflict', `Apply failed with ${list.length} conflict${list.length === 1 ? '' : 's'}: ${list.join(', ')}`));
    }
    const object: JsonObject = { ...result.object, metadata: { ...(result.object.metadata as JsonObject | undefined), name } };
    if (stored?.object.status !== undefined) object.status = stored.object.status;
    this.store.put(route.type, route.namespace, object, owners);
    send(res, stored === undefined ? 201 : 200, this.store.get(route.type.plural, route.namespace, name)?.object ?? {});
  }

  #update(res: ServerResponse, route: Route, next: (live: JsonObject) => JsonObject, manager: string, expectedRv?: string): void {
    const stored = this.store.get(route.type.plural, route.namespace, route.name ?? '');
    if (stored === undefined) return send(res, 404, notFound(route));
    const live = stored.object;
    if (expectedRv !== undefined && expectedRv !== (live.metadata as JsonObject).resourceVersion) {
      return send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${route.type.plural} "${route.name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`));
    }
    // A write to the main resource never changes status.
    const { status: _ignored, ...rest } = next(live);
    const object: JsonObject = live.status === undefined ? rest : { ...rest, status: live.status };
    const owners: Ownership = new Map([...stored.owners].map(([m, o]) => [m, { ...o, paths: new Set(o.paths) }]));
    updateFields(live, object, owners, manager);
    this.store.put(route.type, route.namespace, object, owners);
    send(res, 200, this.store.get(route.type.plural, route.namespace, route.name ?? '')?.object ?? {});
  }

  #writeStatus(res: ServerResponse, route: Route, input: JsonObject, replace: boolean, manager: string): void {
    const stored = this.store.get(route.type.plural, route.namespace, route.name ?? '');
    if (stored === undefined) return send(res, 404, notFound(route));
    const statusValue = replace ? input.status : mergePatch((stored.object.status ?? {}) as JsonObject, (input.status ?? {}) as JsonObject);
    // The status subresource changes status only, whatever else the body holds.
    this.store.put(route.type, route.namespace, { ...stored.object, status: statusValue ?? {} }, new Map([...stored.owners, [manager, { operation: 'Update', paths: new Set(['status']), subresource: 'status' }]]));
    send(res, 200, this.store.get(route.type.plural, route.namespace, route.name ?? '')?.object ?? {});
  }

  /** A pod is not deleted but marked: it terminates through its grace period (the kubelet removes it), unless that is 0. */
  #deletePod(res: ServerResponse, route: Route, url: URL): void {
    const stored = this.store.get('pods', route.namespace, route.name ?? '');
    if (stored === undefined) return send(res, 404, notFound(route));
    if (url.searchParams.get('gracePeriodSeconds') === '0') return send(res, 200, this.store.delete(route.type, route.namespace, route.name ?? '') ?? {});
    if (!isTerminating(stored.object)) this.store.put(route.type, route.namespace, markTerminating(stored.object), stored.owners);
    send(res, 200, this.store.get('pods', route.namespace, route.name ?? '')?.object ?? stored.object);
  }

  #log(res: ServerResponse, route: Route, url: URL): void {
    const lines = this.kubelet.logsOf(route.name ?? '');
    if (lines === undefined) return send(res, 404, notFound(route));
    const tail = Number(url.searchParams.get('tailLines') ?? lines.length);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.slice(-tail).map((l) => `${l}\n`).join(''));
  }

  #quotaRefusal(type: ResourceType, name: string): JsonObject | undefined {
    const limit = this.quota.get(type.plural);
    const used = this.store.list(type.plural, undefined).length;
    if (limit === undefined || used < limit) return undefined;
    const resource = `count/${type.plural}${type.group === '' ? '' : `.${type.group}`}`;
    return status(403, 'Forbidden', `${type.plural} "${name}" is forbidden: exceeded quota: berth-quota, requested: ${resource}=1, used: ${resource}=${used}, limited: ${resource}=${limit}`);
  }
}

function parseRoute(pathname: string): Route | undefined {
  const match = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(pathname);
  if (match === null) return undefined;
  const [group, version] = match[1] !== undefined ? ['', match[1]] : [match[2] ?? '', match[3] ?? ''];
  const type = RESOURCES.find((t) => t.group === group && t.version === version && t.plural === match[5]);
  if (type === undefined) return undefined;
  return { type, namespace: match[4] ?? '', ...(match[6] === undefined ? {} : { name: match[6] }), ...(match[7] === undefined ? {} : { sub: match[7] }) };
}

function verbOf(method: string, route: Route, url: URL): string {
  if (method === 'GET') return route.name !== undefined ? 'get' : url.searchParams.has('watch') ? 'watch' : 'list';
  return { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[method] ?? method.toLowerCase();
}

type Requirement = { readonly key: string; readonly op: 'in' | 'notin' | 'exists' | '!exists'; readonly values: readonly string[] };

/** Label selectors as the API server reads them: `a=b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`. */
export function parseSelector(text: string): Requirement[] {
  const parts = text.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  return parts.map((part) => part.trim()).filter((p) => p !== '').map((part): Requirement => {
    const set = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part);
    if (set !== null) return { key: set[1] ?? '', op: set[2] as 'in' | 'notin', values: (set[3] ?? '').split(',').map((v) => v.trim()) };
    const ne = /^([^!=]+)!=(.*)$/.exec(part);
    if (ne !== null) return { key: ne[1] ?? '', op: 'notin', values: [ne[2] ?? ''] };
    const eq = /^([^=]+)==?(.*)$/.exec(part);
    if (eq !== null) return { key: eq[1] ?? '', op: 'in', values: [eq[2] ?? ''] };
    return part.startsWith('!') ? { key: part.slice(1), op: '!exists', values: [] } : { key: part, op: 'exists', values: [] };
  });
}

export function matches(selector: readonly Requirement[], labels: Readonly<Record<string, string>>): boolean {
  return selector.every(({ key, op, values }) => {
    const value = labels[key];
    if (op === 'exists') return value !== undefined;
    if (op === '!exists') return value === undefined;
    if (op === 'in') return value !== undefined && values.includes(value);
    return value === undefined || !values.includes(value);
  });
}

export function labelsOf(object: JsonObject): Record<string, string> {
  const labels = (object.metadata as JsonObject | undefined)?.labels;
  return isObject(labels) ? (labels as Record<string, string>) : {};
}

/** JSON merge patch (RFC 7386). */
function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const result: JsonObject = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else if (isObject(v) && isObject(result[k])) result[k] = mergePatch(result[k], v);
    else result[k] = v;
  }
  return result;
}

/** The API server's own validation, for the rules berth has met on a real one: a NetworkPolicy's ipBlock CIDRs. */
function invalidity(route: Route, object: JsonObject): JsonObject | undefined {
  if (route.type.plural !== 'networkpolicies') return undefined;
  const causes: string[] = [];
  const spec = isObject(object.spec) ? object.spec : {};
  for (const [direction, peersKey] of [['ingress', 'from'], ['egress', 'to']] as const) {
    const rules = Array.isArray(spec[direction]) ? (spec[direction] as JsonObject[]) : [];
    rules.forEach((rule, i) => {
      const peers = Array.isArray(rule[peersKey]) ? (rule[peersKey] as JsonObject[]) : [];
      peers.forEach((peer, j) => {
        const cidr = isObject(peer.ipBlock) ? peer.ipBlock.cidr : undefined;
        const problem = typeof cidr === 'string' ? cidrProblem(cidr) : undefined;
        if (problem !== undefined) causes.push(`spec.${direction}[${i}].${peersKey}[${j}].ipBlock.cidr: Invalid value: "${String(cidr)}": ${problem}`);
      });
    });
  }
  if (causes.length === 0) return undefined;
  const name = String((isObject(object.metadata) ? object.metadata.name : undefined) ?? route.name ?? '');
  return status(422, 'Invalid', `NetworkPolicy.networking.k8s.io "${name}" is invalid: ${causes.join(', ')}`);
}

function cidrProblem(cidr: string): string | undefined {
  const address = cidr.split('/')[0] ?? '';
  // The URL parser writes an IPv4-mapped address as ::ffff: and two hex groups, however it was spelt.
  if (isIPv6(address) && /^\[::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}\]$/.test(new URL(`http://[${address}]/`).hostname)) return 'must not have an IPv4-mapped IPv6 address';
  if (parseCidr(cidr) === undefined) return 'must not have bits set beyond the prefix length';
  return undefined;
}

function status(code: number, reason: string, message: string): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function notFound(route: Route): JsonObject {
  return status(404, 'NotFound', `${route.type.plural}${route.type.group === '' ? '' : `.${route.type.group}`} "${route.name ?? ''}" not found`);
}

function send(res: ServerResponse, code: number, body: JsonObject): void {
  if (res.headersSent) return;
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
