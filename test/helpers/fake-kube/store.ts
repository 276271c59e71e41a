// The fake API server's storage: objects by resource, one resourceVersion
// counter, a bounded event history for watches (older versions get 410 Gone,
// as after etcd compaction), generation bumps on spec changes.
import { EventEmitter } from 'node:events';
import type { Json, JsonObject, Ownership } from './fields.ts';
import { isObject, managedFields, sameJson } from './fields.ts';

export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  readonly namespaced: boolean;
}

export const RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true },
  { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
  { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true },
  { group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true },
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', namespaced: true },
  { group: 'apps', version: 'v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true },
  { group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy', plural: 'networkpolicies', namespaced: true },
  { group: 'policy', version: 'v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', namespaced: true },
  { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers', namespaced: true },
  { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: true },
];

export function apiVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

export interface Stored {
  object: JsonObject;
  readonly owners: Ownership;
}

export interface WatchEvent {
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly plural: string;
  readonly object: JsonObject;
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

export class Store extends EventEmitter<{ event: [WatchEvent] }> {
  /** plural → `namespace/name` → object. */
  readonly #objects = new Map<string, Map<string, Stored>>();
  readonly #history: WatchEvent[] = [];
  readonly #historyLimit: number;
  #rv = 1;
  #uid = 0;
  /** Events at or below this version are gone (compacted). */
  #compactedTo = 0;

  constructor(historyLimit = 10_000) {
    super();
    this.#historyLimit = historyLimit;
    this.setMaxListeners(0);
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  get(plural: string, namespace: string, name: string): Stored | undefined {
    return this.#objects.get(plural)?.get(key(namespace, name));
  }

  list(plural: string, namespace: string | undefined): Stored[] {
    const all = [...(this.#objects.get(plural) ?? new Map<string, Stored>()).entries()];
    return all.filter(([k]) => namespace === undefined || k.startsWith(`${namespace}/`)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([, v]) => v);
  }

  count(plural: string): number {
    return this.#objects.get(plural)?.size ?? 0;
  }

  #kind(plural: string): Map<string, Stored> {
    let objects = this.#objects.get(plural);
    if (objects === undefined) this.#objects.set(plural, (objects = new Map()));
    return objects;
  }

  /** Stores a new or changed object; returns false (and stores nothing) when nothing changed. */
  put(type: ResourceType, namespace: string, written: JsonObject, owners: Ownership): boolean {
    const next = withoutEmpties(written);
    const metadata = next.metadata as JsonObject;
    const name = String(metadata.name);
    const previous = this.get(type.plural, namespace, name);
    const time = new Date().toISOString();
    const meta: JsonObject = { ...metadata, name, namespace, managedFields: managedFields(owners, apiVersionOf(type), time) };
    if (previous !== undefined && sameJson(strip(previous.object), strip({ ...next, metadata: meta }))) return false;
    const oldMeta = (previous?.object.metadata ?? {}) as JsonObject;
    const specChanged = previous === undefined || !sameJson(previous.object.spec, next.spec);
    const generation = Number(oldMeta.generation ?? 0) + (specChanged && next.spec !== undefined ? 1 : 0);
    const rv = ++this.#rv;
    const object: JsonObject = {
      ...next,
      apiVersion: apiVersionOf(type),
      kind: type.kind,
      metadata: { ...meta, uid: (oldMeta.uid as string | undefined) ?? `uid-${++this.#uid}`, creationTimestamp: (oldMeta.creationTimestamp as string | undefined) ?? time, resourceVersion: String(rv), ...(next.spec === undefined ? {} : { generation }) },
    };
    this.#kind(type.plural).set(key(namespace, name), { object, owners });
    this.#record({ rv, type: previous === undefined ? 'ADDED' : 'MODIFIED', plural: type.plural, object });
    return true;
  }

  delete(type: ResourceType, namespace: string, name: string): JsonObject | undefined {
    const stored = this.get(type.plural, namespace, name);
    if (stored === undefined) return undefined;
    this.#kind(type.plural).delete(key(namespace, name));
    const rv = ++this.#rv;
    const object = { ...stored.object, metadata: { ...(stored.object.metadata as JsonObject), resourceVersion: String(rv) } };
    this.#record({ rv, type: 'DELETED', plural: type.plural, object });
    return object;
  }

  /** Events after `rv`, or undefined when some of them were compacted away (410 Gone). */
  since(rv: number): WatchEvent[] | undefined {
    if (rv < this.#compactedTo) return undefined;
    return this.#history.filter((e) => e.rv > rv);
  }

  /**
   * Forgets the whole history, as etcd compaction does after writes elsewhere
   * in the cluster moved the revision on: every watch must re-list.
   */
  compact(): void {
    this.#compactedTo = ++this.#rv;
    this.#history.length = 0;
  }

  #record(event: WatchEvent): void {
    this.#history.push(event);
    if (this.#history.length > this.#historyLimit) this.#compactedTo = this.#history.shift()?.rv ?? this.#compactedTo;
    this.emit('event', event);
  }
}

function strip(object: JsonObject): Json {
  const metadata = { ...(object.metadata as JsonObject) };
  for (const field of ['resourceVersion', 'managedFields', 'generation', 'uid', 'creationTimestamp']) delete metadata[field];
  return { ...object, metadata, managedFieldsKey: isObject(object.metadata) ? managedKey(object.metadata.managedFields) : null };
}

/** managedFields compared without their timestamps. */
function managedKey(fields: Json | undefined): Json {
  return Array.isArray(fields) ? fields.map((f) => (isObject(f) ? { ...f, time: null } : f)) : null;
}

/** Fields whose value is a map (Go `map[string]string`): their empty values are values, and stay. */
const MAPS = new Set(['labels', 'annotations', 'data', 'stringData', 'binaryData', 'matchLabels', 'nodeSelector', 'selector', 'hard']);

/**
 * The object as the API server stores it: its typed fields are `omitempty`,
 * so an empty list (`env: []`) or an empty string (`value: ""`) written
 * reads back absent. A map's empty values are kept (`labels: { a: "" }`).
 */
function withoutEmpties(object: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(object)) {
    if (Array.isArray(value)) {
      if (value.length > 0) out[key] = value.map((item: Json) => (isObject(item) ? withoutEmpties(item) : item));
    } else if (isObject(value)) {
      out[key] = MAPS.has(key) ? value : withoutEmpties(value);
    } else if (value !== '') {
      out[key] = value;
    }
  }
  return out;
}
