// The fake cluster's controllers and kubelet in one: Deployments get a
// ReplicaSet per template and pods owned by it, pods move through the phases a
// script picks and, once deleted, terminate for `stepMs` before they go,
// Services get EndpointSlices of their ready pods. Nothing runs: a running
// pod's address is one the test serves on (127.0.0.1 by default).
import { createHash } from 'node:crypto';
import type { Json, JsonObject } from './fields.ts';
import { isObject, sameJson } from './fields.ts';
import type { ResourceType, Store, WatchEvent } from './store.ts';
import { RESOURCES } from './store.ts';
import { labelsOf, matches } from './server.ts';

export type Behaviour = 'run' | 'crash-loop' | 'oom' | 'image-pull' | 'invalid-image' | 'config-error' | 'unschedulable';

const type = (kind: string): ResourceType => RESOURCES.find((t) => t.kind === kind) as ResourceType;
const POD = type('Pod');
const DEPLOYMENT = type('Deployment');
const REPLICA_SET = type('ReplicaSet');
const SLICE = type('EndpointSlice');
const TEMPLATE_HASH = 'pod-template-hash';

export class Kubelet {
  readonly #store: Store;
  #script: (pod: { deployment: string; image: string }) => Behaviour = () => 'run';
  /** Where a running pod is reachable. */
  podIp = '127.0.0.1';
  /**
   * The port a new pod serves its `mcp` port on, when not the template's: on
   * loopback, distinct pods are distinct processes on distinct ports (in a
   * cluster they would share the port on distinct addresses).
   */
  portOf: (pod: { deployment: string; name: string }) => number | undefined = () => undefined;
  readonly #ports = new Map<string, number>();
  /** How long a pod stays Pending before its script plays, and terminating before it goes. */
  stepMs = 20;
  /** The most pods the namespace may hold (a `pods` quota); more fail with "exceeded quota" on the Deployment. */
  podQuota = Number.POSITIVE_INFINITY;
  readonly #logs = new Map<string, string[]>();
  /** Deployment → its templates by hash, oldest first: one ReplicaSet each. */
  readonly #templates = new Map<string, Map<string, JsonObject>>();
  /** Pods terminating: each goes `stepMs` after it was marked. */
  readonly #terminating = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #rollouts = new Map<string, number>();
  #counter = 0;
  #scheduled = false;
  #stopped = false;
  /** What changed since the last pass: only these are reconciled, so a big cluster stays cheap. */
  readonly #dirtyDeployments = new Set<string>();
  readonly #dirtyServices = new Set<string>();
  /** `namespace/deployment` → its pods' names. */
  readonly #podsOf = new Map<string, Set<string>>();

  constructor(store: Store) {
    this.#store = store;
    store.on('event', (event) => this.#observe(event));
  }

  #observe(event: WatchEvent): void {
    const object = event.object;
    const at = `${nsOf(object)}/${nameOf(object)}`;
    if (event.plural === 'deployments') this.#dirtyDeployments.add(at);
    else if (event.plural === 'services') this.#dirtyServices.add(at);
    else if (event.plural === 'pods') {
      if (event.type !== 'DELETED' && isTerminating(object)) this.#finishTermination(object);
      const owner = `${nsOf(object)}/${deploymentOf(object)}`;
      const pods = this.#podsOf.get(owner) ?? new Set<string>();
      if (event.type === 'DELETED') pods.delete(nameOf(object));
      else pods.add(nameOf(object));
      this.#podsOf.set(owner, pods);
      this.#dirtyDeployments.add(owner);
      for (const service of this.#store.list('services', nsOf(object))) {
        if (matches(selectorOf(service.object), labelsOf(object))) this.#dirtyServices.add(`${nsOf(object)}/${nameOf(service.object)}`);
      }
    } else return;
    this.#schedule();
  }

  /** Picks what each new pod does; the default runs every pod. */
  behave(script: (pod: { deployment: string; image: string }) => Behaviour): void {
    this.#script = script;
  }

  /** Template changes of a Deployment after its creation: each is one rollout. */
  rolloutsOf(deployment: string): number {
    return this.#rollouts.get(deployment) ?? 0;
  }

  logsOf(pod: string): string[] | undefined {
    return this.#logs.get(pod);
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
  }

  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#stopped) this.#reconcile();
    });
  }

  #reconcile(): void {
    const deployments = [...this.#dirtyDeployments];
    const services = [...this.#dirtyServices];
    this.#dirtyDeployments.clear();
    this.#dirtyServices.clear();
    // Slices first, as in a cluster: a pod that became ready is published by the EndpointSlice
    // controller before the Deployment controller, a hop further, retires the old pods it replaces.
    for (const at of services) {
      const [namespace = '', name = ''] = at.split('/');
      const service = this.#store.get('services', namespace, name)?.object;
      if (service !== undefined) this.#reconcileSlice(service);
      // Garbage collection: a deleted Service's slices go too.
      else for (const slice of this.#store.list('endpointslices', namespace)) if (labelsOf(slice.object)['kubernetes.io/service-name'] === name) this.#store.delete(SLICE, namespace, nameOf(slice.object));
    }
    for (const at of deployments) {
      const [namespace = '', name = ''] = at.split('/');
      const pods = [...(this.#podsOf.get(at) ?? [])].map((pod) => this.#store.get('pods', namespace, pod)?.object).filter((p) => p !== undefined);
      const deployment = this.#store.get('deployments', namespace, name)?.object;
      // Garbage collection: the ReplicaSets and pods of a Deployment that is gone go too.
      if (deployment === undefined) {
        for (const pod of pods) this.#terminate(pod);
        for (const hash of this.#templates.get(name)?.keys() ?? []) this.#store.delete(REPLICA_SET, namespace, `${name}-${hash}`);
        this.#templates.delete(name);
      } else this.#reconcileDeployment(deployment, pods);
    }
  }

  #reconcileDeployment(deployment: JsonObject, pods: JsonObject[]): void {
    const spec = deployment.spec as JsonObject;
    const template = spec.template as JsonObject;
    const hash = createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 10);
    const name = nameOf(deployment);
    const templates = this.#templates.get(name) ?? new Map<string, JsonObject>();
    if (!templates.has(hash)) {
      if (templates.size > 0) this.#rollouts.set(name, (this.#rollouts.get(name) ?? 0) + 1);
      templates.set(hash, template);
      this.#templates.set(name, templates);
    }
    const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
    // Terminating pods no longer count: the ReplicaSet replaces them at once.
    const live = pods.filter((p) => !isTerminating(p));
    const current = live.filter((p) => labelsOf(p)[TEMPLATE_HASH] === hash);
    const old = live.filter((p) => labelsOf(p)[TEMPLATE_HASH] !== hash);
    let failure: string | undefined;
    for (let i = current.length; i < replicas; i++) {
      if (this.#store.count('pods') >= this.podQuota) {
        failure = `pods "${name}-${hash}-x" is forbidden: exceeded quota: berth-quota, requested: pods=1, used: pods=${this.podQuota}, limited: pods=${this.podQuota}`;
        break;
      }
      current.push(this.#createPod(deployment, template, hash));
    }
    // Surplus goes cheapest first (the pod-deletion-cost annotation), then newest.
    const surplus = [...current].sort((a, b) => deletionCost(a) - deletionCost(b) || (nameOf(a) < nameOf(b) ? 1 : -1)).slice(0, Math.max(0, current.length - replicas));
    for (const pod of surplus) this.#terminate(pod);
    const serving = current.filter((p) => !surplus.includes(p));
    const ready = serving.filter(isReady).length;
    // Old pods stay until the new ones are ready (maxUnavailable 0); then their ReplicaSets go to zero.
    const rolledOut = ready >= replicas;
    if (rolledOut) for (const pod of old) this.#terminate(pod);
    for (const [each, eachTemplate] of templates) {
      const own = each === hash ? serving : old.filter((p) => labelsOf(p)[TEMPLATE_HASH] === each);
      this.#putReplicaSet(deployment, eachTemplate, each, each === hash ? replicas : rolledOut ? 0 : own.length, rolledOut && each !== hash ? [] : own, each === hash ? failure : undefined);
    }
    const stored = this.#store.get('deployments', nsOf(deployment), name);
    if (stored === undefined) return;
    const status: JsonObject = {
      observedGeneration: Number((deployment.metadata as JsonObject).generation ?? 1),
      replicas: serving.length + (rolledOut ? 0 : old.length),
      updatedReplicas: serving.length,
      readyReplicas: ready,
      availableReplicas: ready,
      conditions: [
        { type: 'Available', status: rolledOut ? 'True' : 'False', reason: rolledOut ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable' },
        ...(failure === undefined ? [] : [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure }]),
      ],
    };
    this.#store.put(DEPLOYMENT, nsOf(deployment), { ...stored.object, status }, stored.owners);
  }

  /** A Deployment's ReplicaSet for one template, as the Deployment controller keeps it (old ones stay, at zero). */
  #putReplicaSet(deployment: JsonObject, template: JsonObject, hash: string, replicas: number, pods: readonly JsonObject[], failure: string | undefined): void {
    const namespace = nsOf(deployment);
    const name = `${nameOf(deployment)}-${hash}`;
    const labels = { ...((template.metadata as JsonObject | undefined)?.labels as JsonObject | undefined), [TEMPLATE_HASH]: hash };
    const selector = ((deployment.spec as JsonObject).selector ?? {}) as JsonObject;
    const ready = pods.filter(isReady).length;
    const set: JsonObject = {
      metadata: { name, labels, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: nameOf(deployment), uid: String((deployment.metadata as JsonObject).uid), controller: true, blockOwnerDeletion: true }] },
      spec: { replicas, selector: { ...selector, matchLabels: { ...(selector.matchLabels as JsonObject | undefined), [TEMPLATE_HASH]: hash } }, template: { ...template, metadata: { ...(template.metadata as JsonObject | undefined), labels } } },
      status: { replicas: pods.length, readyReplicas: ready, availableReplicas: ready, ...(failure === undefined ? {} : { conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: failure }] }) },
    };
    this.#store.put(REPLICA_SET, namespace, set, this.#store.get('replicasets', namespace, name)?.owners ?? new Map());
  }

  /** As a DELETE does: the pod is marked and stays, terminating, until the kubelet saw it stop. */
  #terminate(pod: JsonObject): void {
    const stored = this.#store.get('pods', nsOf(pod), nameOf(pod));
    if (stored === undefined || isTerminating(stored.object)) return;
    this.#store.put(POD, nsOf(pod), markTerminating(stored.object), stored.owners);
  }

  /** The process stopped at once on SIGTERM: the pod goes `stepMs` after it was marked. */
  #finishTermination(pod: JsonObject): void {
    const at = `${nsOf(pod)}/${nameOf(pod)}`;
    if (this.#terminating.has(at)) return;
    this.#terminating.add(at);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#terminating.delete(at);
      this.#store.delete(POD, nsOf(pod), nameOf(pod));
    }, this.stepMs);
    this.#timers.add(timer);
  }

  #createPod(deployment: JsonObject, template: JsonObject, hash: string): JsonObject {
    const meta = (template.metadata ?? {}) as JsonObject;
    const deploymentName = nameOf(deployment);
    const podName = `${deploymentName}-${hash}-${(++this.#counter).toString(36).padStart(5, '0')}`;
    const namespace = nsOf(deployment);
    const podSpec = template.spec as JsonObject;
    const image = String(((podSpec.containers as JsonObject[])[0] ?? {}).image ?? '');
    const pod: JsonObject = {
      metadata: {
        name: podName,
        labels: { ...(meta.labels as JsonObject | undefined), [TEMPLATE_HASH]: hash },
        ...(meta.annotations === undefined ? {} : { annotations: meta.annotations }),
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${deploymentName}-${hash}`, uid: `uid-rs-${deploymentName}-${hash}`, controller: true, blockOwnerDeletion: true }],
      },
      spec: podSpec,
      status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] },
    };
    this.#store.put(POD, namespace, pod, new Map());
    this.#logs.set(podName, [`pod ${podName} created`]);
    const port = this.portOf({ deployment: deploymentName, name: podName });
    if (port !== undefined) this.#ports.set(podName, port);
    const behaviour = this.#script({ deployment: deploymentName, image });
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#play(namespace, podName, image, behaviour);
    }, this.stepMs);
    this.#timers.add(timer);
    return this.#store.get('pods', namespace, podName)?.object ?? pod;
  }

  #play(namespace: string, podName: string, image: string, behaviour: Behaviour): void {
    const stored = this.#store.get('pods', namespace, podName);
    if (stored === undefined) return;
    const now = new Date().toISOString();
    const waiting = (reason: string, message: string, extra: JsonObject = {}): JsonObject => ({ phase: 'Pending', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'server', image, ready: false, restartCount: 0, state: { waiting: { reason, message } }, ...extra }] });
    const crashing = (reason: string, exitCode: number): JsonObject => ({
      phase: 'Running',
      podIP: this.podIp,
      conditions: [{ type: 'Ready', status: 'False' }],
      containerStatuses: [{ name: 'server', image, ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 1m20s restarting failed container=server' } }, lastState: { terminated: { reason, exitCode, finishedAt: now } } }],
    });
    const statuses: Record<Behaviour, JsonObject> = {
      run: { phase: 'Running', podIP: this.podIp, startTime: now, conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'server', image, ready: true, restartCount: 0, state: { running: { startedAt: now } } }] },
      'crash-loop': crashing('Error', 1),
      oom: crashing('OOMKilled', 137),
      'image-pull': waiting('ImagePullBackOff', `Back-off pulling image "${image}"`),
      'invalid-image': waiting('InvalidImageName', `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format`),
      'config-error': waiting('CreateContainerConfigError', 'secret "missing" not found'),
      unschedulable: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available.' }] },
    };
    this.#logs.get(podName)?.push(behaviour === 'run' ? 'server listening' : `server failed: ${behaviour}`);
    this.#store.put(POD, namespace, { ...stored.object, status: statuses[behaviour] }, stored.owners);
  }

  /**
   * As the EndpointSlice controller: the Service's labels copied onto its
   * slices, endpoints grouped by their resolved ports (one slice per port
   * set), ready and terminating conditions from the pod, stale slices deleted.
   */
  #reconcileSlice(service: JsonObject): void {
    const spec = service.spec as JsonObject;
    const selector = selectorOf(service);
    const namespace = nsOf(service);
    const pods = this.#store.list('pods', namespace).map((s) => s.object).filter((p) => matches(selector, labelsOf(p)) && typeof (p.status as JsonObject).podIP === 'string');
    const portsOf = (pod: JsonObject | undefined): JsonObject[] => (spec.ports as JsonObject[]).map((port) => ({ name: port.name ?? '', protocol: port.protocol ?? 'TCP', port: (pod === undefined ? undefined : this.#ports.get(nameOf(pod))) ?? resolvePort(pod, port.targetPort ?? port.port ?? 0) }));
    const groups = new Map<string, { ports: JsonObject[]; pods: JsonObject[] }>();
    for (const pod of pods) {
      const ports = portsOf(pod);
      const key = ports.map((p) => p.port).join('-');
      const group = groups.get(key) ?? { ports, pods: [] };
      group.pods.push(pod);
      groups.set(key, group);
    }
    // A Service without endpoints still has one (empty) slice.
    if (groups.size === 0) groups.set('', { ports: portsOf(undefined), pods: [] });
    const wanted = new Set<string>();
    for (const [key, group] of groups) {
      const name = `${nameOf(service)}-fake${key === '' ? '' : `-${key}`}`;
      wanted.add(name);
      const slice: JsonObject = {
        metadata: { name, labels: { ...labelsOf(service), 'kubernetes.io/service-name': nameOf(service), 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
        addressType: 'IPv4',
        endpoints: group.pods.map((p) => {
          const terminating = (p.metadata as JsonObject).deletionTimestamp !== undefined;
          return { addresses: [String((p.status as JsonObject).podIP)], conditions: { ready: isReady(p) && !terminating, serving: isReady(p), terminating }, targetRef: { kind: 'Pod', name: nameOf(p), namespace: nsOf(p) } };
        }),
        ports: group.ports,
      };
      const stored = this.#store.get('endpointslices', namespace, name);
      if (stored !== undefined && sameJson(stored.object.endpoints ?? null, slice.endpoints ?? null) && sameJson(stored.object.ports ?? null, slice.ports ?? null) && sameJson((stored.object.metadata as JsonObject).labels ?? null, (slice.metadata as JsonObject).labels ?? null)) continue;
      this.#store.put(SLICE, namespace, stored === undefined ? slice : { ...stored.object, ...slice, metadata: { ...(stored.object.metadata as JsonObject), ...(slice.metadata as JsonObject) } }, stored?.owners ?? new Map());
    }
    for (const stale of this.#store.list('endpointslices', namespace)) {
      const labels = labelsOf(stale.object);
      if (labels['kubernetes.io/service-name'] === nameOf(service) && !wanted.has(nameOf(stale.object))) this.#store.delete(SLICE, namespace, nameOf(stale.object));
    }
  }
}

function selectorOf(service: JsonObject): { key: string; op: 'in'; values: string[] }[] {
  const selector = ((service.spec as JsonObject | undefined)?.selector ?? {}) as Record<string, string>;
  return Object.entries(selector).map(([key, value]) => ({ key, op: 'in', values: [value] }));
}

function resolvePort(pod: JsonObject | undefined, target: Json): number {
  if (typeof target === 'number') return target;
  const containers = (((pod?.spec as JsonObject | undefined)?.containers ?? []) as JsonObject[]);
  const port = containers.flatMap((c) => (c.ports ?? []) as JsonObject[]).find((p) => p.name === target);
  return Number(port?.containerPort ?? 0);
}

function isReady(pod: JsonObject): boolean {
  const conditions = ((pod.status as JsonObject | undefined)?.conditions ?? []) as JsonObject[];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

function deletionCost(pod: JsonObject): number {
  const annotations = (pod.metadata as JsonObject).annotations;
  return Number(isObject(annotations) ? (annotations['controller.kubernetes.io/pod-deletion-cost'] ?? 0) : 0);
}

const nameOf = (o: JsonObject): string => String((o.metadata as JsonObject).name);
const nsOf = (o: JsonObject): string => String((o.metadata as JsonObject).namespace);
/** The Deployment a pod belongs to: its ReplicaSet's name without the template hash. */
function deploymentOf(pod: JsonObject): string {
  const refs = (pod.metadata as JsonObject).ownerReferences;
  const owner = Array.isArray(refs) && isObject(refs[0] ?? null) ? String((refs[0] as JsonObject).name) : '';
  const suffix = `-${labelsOf(pod)[TEMPLATE_HASH] ?? ''}`;
  return owner.endsWith(suffix) ? owner.slice(0, -suffix.length) : owner;
}

export function isTerminating(pod: JsonObject): boolean {
  return (pod.metadata as JsonObject).deletionTimestamp !== undefined;
}

/** A pod marked for deletion, with its own grace period, as the API server answers a DELETE. */
export function markTerminating(pod: JsonObject): JsonObject {
  const grace = (pod.spec as JsonObject | undefined)?.terminationGracePeriodSeconds;
  return { ...pod, metadata: { ...(pod.metadata as JsonObject), deletionTimestamp: new Date().toISOString(), deletionGracePeriodSeconds: typeof grace === 'number' ? grace : 30 } };
}
