// The Kubernetes backend: every placement is a set of objects applied with
// server-side apply, every pod an instance. Writes happen only when the live
// object differs from the rendered one, so an unchanged config and a new user
// of a shared server cost reads, never writes.
import type { KubeConfig, V1Deployment, V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Backend, InstanceEvent, ObservedInstance, Placement, PlacementReplicas, ReadyReplica, UpstreamTransport } from '../backend.ts';
import { backoffDelay, RECONNECT_BACKOFF } from '../../backoff.ts';
import { BackendError } from '../backend.ts';
import type { Header } from './api.ts';
import { KubeApi } from './api.ts';
import { isApplied } from './compare.ts';
import type { KubeObject } from './objects.ts';
import { ANNOTATIONS, LABELS, ownerLabels } from '../labels.ts';
import { placementName, renderPlacement } from './objects.ts';
import { belongsTo, observeDeployment, observeInstances, observePod, parsePlaceholder } from './observe.ts';
import type { KubernetesSettings } from './settings.ts';
import { placementOf, readyEndpoints, SERVICE_NAME_LABEL, transportOf } from './slices.ts';
import type { WatchStats } from './watch.ts';
import { mergeStreams, newWatchStats, watchStream } from './watch.ts';

export interface KubernetesBackendOptions {
  readonly settings: KubernetesSettings;
  readonly config: KubeConfig;
  readonly logger: Logger;
}

/** Kinds a placement may have besides its Deployment and Service; ones it no longer renders are deleted. */
const OPTIONAL_KINDS: readonly (readonly [string, string])[] = [
  ['v1', 'Secret'],
  ['networking.k8s.io/v1', 'NetworkPolicy'],
  ['policy/v1', 'PodDisruptionBudget'],
  ['autoscaling/v2', 'HorizontalPodAutoscaler'],
];

/** What berth does in its namespace: the RBAC self-check asks for exactly these, and deploy/ grants exactly these. */
export const REQUIRED_ACCESS: readonly { readonly group: string; readonly resource: string; readonly verbs: readonly string[] }[] = [
  { group: 'apps', resource: 'deployments', verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  { group: '', resource: 'services', verbs: ['get', 'create', 'patch', 'delete'] },
  { group: '', resource: 'secrets', verbs: ['get', 'create', 'patch', 'delete'] },
  { group: 'networking.k8s.io', resource: 'networkpolicies', verbs: ['get', 'create', 'patch', 'delete'] },
  { group: 'policy', resource: 'poddisruptionbudgets', verbs: ['get', 'create', 'patch', 'delete'] },
  { group: 'autoscaling', resource: 'horizontalpodautoscalers', verbs: ['get', 'create', 'patch', 'delete'] },
  { group: '', resource: 'pods', verbs: ['get', 'list', 'watch', 'patch', 'delete'] },
  { group: '', resource: 'pods/log', verbs: ['get'] },
  { group: 'discovery.k8s.io', resource: 'endpointslices', verbs: ['list', 'watch'] },
];


export class KubernetesBackend implements Backend {
  readonly name = 'kubernetes' as const;
  readonly #settings: KubernetesSettings;
  readonly #api: KubeApi;
  readonly #log: Logger;
  readonly #selector: string;
  readonly #closing = new AbortController();
  /** Watch reconnects and re-lists, for tests and operators. */
  readonly watchStats: WatchStats = newWatchStats();

  constructor(options: KubernetesBackendOptions) {
    this.#settings = options.settings;
    this.#api = new KubeApi(options.config);
    this.#log = options.logger;
    this.#selector = Object.entries(ownerLabels(options.settings.owner)).map(([k, v]) => `${k}=${v}`).join(',');
  }

  /** Asks the API server whether berth may do everything it does; names every missing permission at once. */
  async checkAccess(signal: AbortSignal): Promise<void> {
    const namespace = this.#settings.namespace;
    const checks = REQUIRED_ACCESS.flatMap(({ group, resource, verbs }) => verbs.map((verb) => ({ group, resource, verb })));
    const answers = await Promise.all(checks.map(async (c) => ({ ...c, allowed: await this.#api.mayDo(c.verb, c.group, c.resource, namespace, signal) })));
    const missing = answers.filter((a) => !a.allowed).map((a) => `${a.verb} ${a.resource}${a.group === '' ? '' : `.${a.group}`}`);
    if (missing.length > 0) {
      throw new BackendError('forbidden', `berth's service account may not, in namespace ${namespace}: ${missing.join(', ')}; apply deploy/kubernetes/rbac.yaml or grant these verbs`, { retryable: false });
    }
  }

  /** API write calls this backend made. */
  get apiWrites(): number {
    return this.#api.writes;
  }

  async list(signal: AbortSignal): Promise<readonly ObservedInstance[]> {
    const [deployments, pods] = await Promise.all([this.#listDeployments(this.#selector, signal), this.#listPods(this.#selector, signal)]);
    return observeInstances(deployments, pods);
  }

  async ensure(placement: Placement, signal: AbortSignal): Promise<readonly ObservedInstance[]> {
    const rendered = renderPlacement(placement, this.#settings);
    let writes = 0;
    for (const object of rendered.objects) {
      const live = await this.#api.readJson(headerOf(object), signal);
      // The hash annotation says whether berth wrote this version; the comparison catches anyone who changed it since.
      if (live !== undefined && live.metadata.annotations?.[ANNOTATIONS.appliedHash] === object.metadata.annotations?.[ANNOTATIONS.appliedHash] && isApplied(object, live)) continue;
      await this.#api.apply(object, signal);
      writes++;
    }
    const kept = new Set(rendered.objects.map((o) => o.kind));
    for (const [apiVersion, kind] of OPTIONAL_KINDS) {
      if (kept.has(kind)) continue;
      const header = { apiVersion, kind, metadata: { name: rendered.name, namespace: this.#settings.namespace } };
      const stale = await this.#api.read<KubeObject>(header, signal);
      if (stale === undefined || stale.metadata.labels?.[LABELS.owner] !== this.#settings.owner) continue;
      await this.#api.delete(header, signal);
      writes++;
    }
    if (writes > 0) this.#log.info({ unit: placement.unit.name, user: placement.user?.hash, writes }, 'placement applied');
    const selector = Object.entries(rendered.selector).map(([k, v]) => `${k}=${v}`).join(',');
    const [deployment] = await this.#listDeployments(selector, signal);
    if (deployment === undefined) return [];
    return observeDeployment(deployment, (await this.#listPods(selector, signal)).filter((p) => belongsTo(p, deployment)));
  }

  async remove(instanceId: string, signal: AbortSignal): Promise<void> {
    const placeholder = parsePlaceholder(instanceId);
    const pod = placeholder === undefined ? await this.#api.read<V1Pod>(this.#header('v1', 'Pod', instanceId), signal) : undefined;
    // Another owner's instance is as good as absent.
    if (pod !== undefined && pod.metadata?.labels?.[LABELS.owner] !== this.#settings.owner) return;
    const deploymentName = placeholder?.deployment ?? (pod === undefined ? undefined : this.#placementNameOf(pod));
    if (deploymentName === undefined) return;
    const deployment = await this.#api.read<V1Deployment>(this.#header('apps/v1', 'Deployment', deploymentName), signal);
    if (deployment !== undefined && deployment.metadata?.labels?.[LABELS.owner] !== this.#settings.owner) return;
    if (deployment === undefined) {
      if (pod !== undefined) await this.#api.delete(this.#header('v1', 'Pod', instanceId), signal);
      return;
    }
    // A pod of an older spec is on its way out with the rollout; only it goes.
    if (pod !== undefined && pod.metadata?.labels?.[LABELS.specHash] !== deployment.metadata?.labels?.[LABELS.specHash]) {
      await this.#api.delete(this.#header('v1', 'Pod', instanceId), signal);
      return;
    }
    const replicas = deployment.spec?.replicas ?? 1;
    if (replicas > 1) {
      // Scale down by one and make this pod the one to go.
      if (pod !== undefined) await this.#api.mergePatch(this.#header('v1', 'Pod', instanceId), { metadata: { annotations: { 'controller.kubernetes.io/pod-deletion-cost': '-1000' } } }, signal);
      await this.#api.mergePatch(this.#header('apps/v1', 'Deployment', deploymentName), { spec: { replicas: replicas - 1 } }, signal);
      return;
    }
    await this.#deletePlacement(deploymentName, signal);
  }

  /** A pod's address as its Service's EndpointSlices have it: only a ready, non-terminating endpoint is reachable. */
  async endpoint(instanceId: string, signal: AbortSignal): Promise<UpstreamTransport> {
    const pod = parsePlaceholder(instanceId) === undefined ? await this.#api.read<V1Pod>(this.#header('v1', 'Pod', instanceId), signal) : undefined;
    const service = pod === undefined || pod.metadata?.labels?.[LABELS.owner] !== this.#settings.owner ? undefined : this.#placementNameOf(pod);
    const slices = service === undefined ? [] : (await this.#api.list<V1EndpointSlice>('discovery.k8s.io/v1', 'EndpointSlice', this.#settings.namespace, `${SERVICE_NAME_LABEL}=${service}`, signal)).items;
    const endpoint = readyEndpoints(slices).find((e) => e.pod === instanceId);
    if (pod === undefined || endpoint === undefined) {
      throw new BackendError('instance_not_found', `instance ${instanceId} is not a ready endpoint of its Service`, { retryable: true });
    }
    return transportOf(pod, endpoint);
  }

  /**
   * Every placement's ready pods, from one EndpointSlice watch over the
   * namespace (slices carry their Service's labels, so berth's own). A pod is
   * read once when it first becomes ready, for its path and spec hash; a read
   * that fails is tried again with backoff (RECONNECT_BACKOFF).
   */
  async *replicas(signal: AbortSignal): AsyncIterable<PlacementReplicas> {
    const slices = new Map<string, Map<string, V1EndpointSlice>>();
    const pods = new Map<string, Map<string, V1Pod>>();
    /** Placements with a ready pod berth could not read: failed tries in a row, and whether a retry is due. */
    const unread = new Map<string, { failures: number; retrying: boolean }>();
    const namespace = this.#settings.namespace;
    const target = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', path: `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, namespace, labelSelector: this.#selector };
    yield* watchStream<V1EndpointSlice, PlacementReplicas>(this.#api, target, AbortSignal.any([signal, this.#closing.signal]), this.watchStats, async (update, later) => {
      const placement = placementOf(update.object);
      if (placement === undefined) return [];
      const own = slices.get(placement.service) ?? new Map<string, V1EndpointSlice>();
      slices.set(placement.service, own);
      if (update.kind === 'delete') own.delete(update.object.metadata?.name ?? '');
      else own.set(update.object.metadata?.name ?? '', update.object);
      const known = pods.get(placement.service) ?? new Map<string, V1Pod>();
      const fresh = new Map<string, V1Pod>();
      const ready: ReadyReplica[] = [];
      let failed = false;
      for (const endpoint of readyEndpoints(own.values())) {
        const pod =
          known.get(endpoint.pod) ??
          (await this.#api.read<V1Pod>(this.#header('v1', 'Pod', endpoint.pod), signal).catch((err: unknown) => {
            failed = true;
            this.#log.warn({ pod: endpoint.pod, err: (err as Error).message }, 'cannot read a ready pod; trying again');
          }));
        if (pod === undefined || pod.metadata?.labels?.[LABELS.owner] !== this.#settings.owner) continue;
        fresh.set(endpoint.pod, pod);
        ready.push({ instanceId: endpoint.pod, specHash: pod.metadata.labels[LABELS.specHash] ?? '', transport: transportOf(pod, endpoint) });
      }
      if (own.size === 0) slices.delete(placement.service);
      pods.set(placement.service, fresh);
      const retry = unread.get(placement.service) ?? { failures: 0, retrying: false };
      if (!failed) unread.delete(placement.service);
      else if (!retry.retrying) {
        // The placement's slices are mapped again later, as they are then: a ready pod is routed once it can be read, without waiting for its slice to change.
        unread.set(placement.service, { failures: retry.failures + 1, retrying: true });
        later(backoffDelay(retry.failures + 1, RECONNECT_BACKOFF), () => {
          const state = unread.get(placement.service);
          if (state !== undefined) state.retrying = false;
          const current = slices.get(placement.service)?.values().next().value;
          return current === undefined ? undefined : { kind: 'upsert', object: current };
        });
      }
      return [{ unit: placement.unit, ...(placement.userHash === undefined ? {} : { userHash: placement.userHash }), ready }];
    });
  }

  async logs(instanceId: string, tail: number, signal: AbortSignal): Promise<readonly string[]> {
    if (parsePlaceholder(instanceId) !== undefined) return [];
    const text = await this.#api.podLog(instanceId, this.#settings.namespace, tail, signal);
    return text.split('\n').filter((line) => line !== '');
  }

  /**
   * Pods as they change, and a Deployment's placeholders once the cluster
   * refused its pods (a quota, Pod Security): that refusal is on the
   * Deployment only, and a start waiting for the pod learns it at once.
   */
  async *events(signal: AbortSignal): AsyncIterable<InstanceEvent> {
    const namespace = this.#settings.namespace;
    const stopped = new AbortController();
    const both = AbortSignal.any([signal, this.#closing.signal, stopped.signal]);
    const pods = { apiVersion: 'v1', kind: 'Pod', path: `/api/v1/namespaces/${namespace}/pods`, namespace, labelSelector: this.#selector };
    const deployments = { apiVersion: 'apps/v1', kind: 'Deployment', path: `/apis/apps/v1/namespaces/${namespace}/deployments`, namespace, labelSelector: this.#selector };
    yield* mergeStreams<InstanceEvent>([
      watchStream<V1Pod, InstanceEvent>(this.#api, pods, both, this.watchStats, (update) => {
        const pod = update.object;
        return [update.kind === 'delete' ? { kind: 'removed', id: pod.metadata?.name ?? '', unit: pod.metadata?.labels?.[LABELS.server] ?? '' } : { kind: 'changed', instance: observePod(pod, 0) }];
      }),
      watchStream<V1Deployment, InstanceEvent>(this.#api, deployments, both, this.watchStats, (update) =>
        update.kind === 'delete' ? [] : observeDeployment(update.object, []).filter((i) => i.failure !== undefined).map((instance) => ({ kind: 'changed' as const, instance })),
      ),
    ], stopped);
  }

  async close(): Promise<void> {
    // Pods keep running: the next berth adopts them.
    this.#closing.abort();
  }

  async #deletePlacement(name: string, signal: AbortSignal): Promise<void> {
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['autoscaling/v2', 'HorizontalPodAutoscaler'], ['policy/v1', 'PodDisruptionBudget'], ['v1', 'Service'], ['networking.k8s.io/v1', 'NetworkPolicy'], ['v1', 'Secret']] as const) {
      await this.#api.delete(this.#header(apiVersion, kind, name), signal);
    }
  }

  #placementNameOf(pod: V1Pod): string | undefined {
    const labels = pod.metadata?.labels ?? {};
    const server = labels[LABELS.server];
    return server === undefined ? undefined : placementName(this.#settings.owner, server, labels[LABELS.user]);
  }

  #header(apiVersion: string, kind: string, name: string): Header {
    return { apiVersion, kind, metadata: { name, namespace: this.#settings.namespace } };
  }

  #listDeployments(selector: string, signal: AbortSignal): Promise<V1Deployment[]> {
    return this.#api.list<V1Deployment>('apps/v1', 'Deployment', this.#settings.namespace, selector, signal).then((l) => l.items);
  }

  #listPods(selector: string, signal: AbortSignal): Promise<V1Pod[]> {
    return this.#api.list<V1Pod>('v1', 'Pod', this.#settings.namespace, selector, signal).then((l) => l.items);
  }
}

function headerOf(object: KubeObject): Header {
  return { apiVersion: object.apiVersion, kind: object.kind, metadata: { name: object.metadata.name, namespace: object.metadata.namespace } };
}
