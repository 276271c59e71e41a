// The Kubernetes objects of one placement, as pure data: what `ensure`
// applies and `berth render` prints. No client, no clock, no randomness:
// the same placement and settings always give byte-identical objects.
import type { V1Container, V1EnvVar, V1ObjectMeta, V1PodSpec } from '@kubernetes/client-node';
import type { PodSettings } from '../../config/types.gen.ts';
import { parseQuantity } from '../../config/units.ts';
import { hashSpec } from '../../desired/hash.ts';
import type { Resources, Unit } from '../../desired/types.ts';
import type { Placement } from '../backend.ts';
import { ANNOTATIONS, LABELS, ownerLabels } from '../labels.ts';
import type { Workload } from '../runtime.ts';
import { workloadOf } from '../runtime.ts';
import { egressBlocks } from './egress.ts';
import type { KubernetesSettings } from './settings.ts';
import { definedValues, podSettingsFor } from './settings.ts';

/** Any object berth writes: always named, namespaced and labelled. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: V1ObjectMeta & { readonly name: string; readonly namespace: string };
  readonly [field: string]: unknown;
}

export const FIELD_MANAGER = 'berth';

/** The objects of one placement, in the order they are applied (a Secret before the pods that read it). */
export interface PlacementObjects {
  /** Name of every object of the placement. */
  readonly name: string;
  /** Labels that select the placement's pods, whatever their spec. */
  readonly selector: Readonly<Record<string, string>>;
  readonly objects: readonly KubeObject[];
  /** How the proxy reaches a pod: port and path on the pod's address. */
  readonly port: number;
  readonly path: string;
  readonly transport: 'streamable-http' | 'sse';
}

const MAX_NAME = 63;

/**
 * The object name of a placement: `<owner>-<server>` for a shared unit,
 * `<owner>-<server>-<user hash>` for one user's instance; shortened with a
 * hash when longer than a DNS label allows.
 */
export function placementName(owner: string, unit: string, userHash?: string): string {
  const full = userHash === undefined ? `${owner}-${unit}` : `${owner}-${unit}-${userHash.slice(0, 10)}`;
  if (full.length <= MAX_NAME) return full;
  return `${full.slice(0, MAX_NAME - 11).replace(/-+$/, '')}-${hashSpec(full).slice(0, 10)}`;
}

/** The Deployment, Service, Secret, NetworkPolicy, PodDisruptionBudget and HorizontalPodAutoscaler of a placement. */
export function renderPlacement(placement: Placement, settings: KubernetesSettings): PlacementObjects {
  const { unit, user } = placement;
  const name = placementName(settings.owner, unit.name, user?.hash);
  const selector = { ...ownerLabels(settings.owner), [LABELS.server]: unit.name, ...(user === undefined ? {} : { [LABELS.user]: user.hash }) };
  // The spec hash labels only the Deployment and its pods: a change rewrites what must restart, nothing else.
  const labels = { ...selector, [LABELS.specHash]: unit.specHash };
  const meta = (): KubeObject['metadata'] => ({ name, namespace: settings.namespace, labels: selector });
  const pods = podSettingsFor(settings, unit.spec.kubernetes);
  const workload = workloadOf(unit.spec, settings.bridgeImage);
  const secretData = secretValues(unit, user?.env ?? {});
  const hasSecret = Object.keys(secretData).length > 0;
  const autoscale = unit.scope === 'shared' ? unit.spec.kubernetes?.autoscale : undefined;
  const replicas = unit.scope === 'shared' ? unit.replicas : 1;

  const objects: KubeObject[] = [];
  if (hasSecret) {
    objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: meta(), type: 'Opaque', data: mapValues(secretData, (v) => Buffer.from(v).toString('base64')) });
  }
  if (settings.networkPolicy) objects.push(networkPolicy(meta(), selector, workload.port, settings, pods));
  objects.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(),
    spec: { type: 'ClusterIP', selector, ports: [{ name: 'mcp', port: workload.port, targetPort: 'mcp', protocol: 'TCP' }] },
  });
  const container: V1Container = {
    name: 'server',
    image: workload.image,
    ...(workload.entrypoint === undefined ? {} : { command: [...workload.entrypoint] }),
    ...(workload.args.length === 0 ? {} : { args: [...workload.args] }),
    ...(workload.workingDir === undefined ? {} : { workingDir: workload.workingDir }),
    ports: [{ name: 'mcp', containerPort: workload.port, protocol: 'TCP' }],
    ...envOf(envVars(unit, workload.env, name, secretData)),
    ...resourcesOf(unit.spec.resources),
    readinessProbe: { tcpSocket: { port: 'mcp' }, periodSeconds: 5 },
    securityContext: {
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: pods.readOnlyRootFilesystem ?? true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: writablePaths(pods).map((mountPath, i) => ({ name: `writable-${i}`, mountPath })),
  };
  const podSpec: V1PodSpec = {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    ...(settings.serviceAccount === undefined ? {} : { serviceAccountName: settings.serviceAccount }),
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    ...(pods.runtimeClassName === undefined ? {} : { runtimeClassName: pods.runtimeClassName }),
    ...(pods.nodeSelector === undefined ? {} : { nodeSelector: definedValues(pods.nodeSelector) }),
    ...(pods.tolerations === undefined ? {} : { tolerations: pods.tolerations }),
    ...(pods.imagePullSecrets === undefined ? {} : { imagePullSecrets: pods.imagePullSecrets.map((s) => ({ name: s })) }),
    containers: [container],
    volumes: writablePaths(pods).map((_, i) => ({ name: `writable-${i}`, emptyDir: {} })),
  };
  objects.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { ...meta(), labels },
    spec: {
      // Under an autoscaler berth must not own `replicas`, or every apply would undo its scaling.
      ...(autoscale === undefined ? { replicas } : {}),
      selector: { matchLabels: selector },
      // New pods become ready before old ones go, so a rollout never drops to zero.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      revisionHistoryLimit: 2,
      template: {
        metadata: {
          labels,
          annotations: { [ANNOTATIONS.path]: workload.path, [ANNOTATIONS.transport]: workload.transport, ...(hasSecret ? { [ANNOTATIONS.secretChecksum]: hashSpec(secretData) } : {}) },
        },
        spec: podSpec,
      },
    },
  });
  if (replicas > 1 || (autoscale?.minReplicas ?? 0) > 1) {
    objects.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta(), spec: { maxUnavailable: 1, selector: { matchLabels: selector } } });
  }
  if (autoscale !== undefined) {
    objects.push({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: meta(),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
        minReplicas: autoscale.minReplicas ?? unit.replicas,
        maxReplicas: autoscale.maxReplicas,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: autoscale.cpuUtilization ?? 80 } } }],
      },
    });
  }
  return { name, selector, objects: objects.map(withAppliedHash), port: workload.port, path: workload.path, transport: workload.transport };
}

/** The hash of an object without its own hash annotation; stamped on it so an unchanged object is recognised by one field. */
export function appliedHash(object: KubeObject): string {
  const { [ANNOTATIONS.appliedHash]: _own, ...annotations } = object.metadata.annotations ?? {};
  return hashSpec({ ...object, metadata: { ...object.metadata, annotations } });
}

function withAppliedHash(object: KubeObject): KubeObject {
  return { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, [ANNOTATIONS.appliedHash]: appliedHash(object) } } };
}

/** Sensitive config values and every per-user value: these live in the Secret, never in the pod template. */
function secretValues(unit: Unit, userEnv: Readonly<Record<string, string>>): Record<string, string> {
  const { values, sensitive } = unit.spec.env;
  const data: Record<string, string> = {};
  for (const name of sensitive) {
    const value = values[name];
    if (value !== undefined) data[name] = value;
  }
  return { ...data, ...userEnv };
}

// The API server stores neither an empty list nor an empty string (its fields are
// `omitempty`): rendered with them, a re-read would never compare equal and every
// ensure would write.
function envVars(unit: Unit, base: Workload['env'], secretName: string, secretData: Readonly<Record<string, string>>): V1EnvVar[] {
  const plain = { ...base, ...unit.spec.env.values };
  const names = [...new Set([...Object.keys(plain), ...Object.keys(secretData)])].sort();
  return names.map((name) => {
    if (secretData[name] !== undefined) return { name, valueFrom: { secretKeyRef: { name: secretName, key: name } } };
    const value = plain[name] ?? '';
    return value === '' ? { name } : { name, value };
  });
}

function envOf(env: V1EnvVar[]): Pick<V1Container, 'env'> {
  return env.length === 0 ? {} : { env };
}

/** Requests equal limits (Guaranteed QoS), in the canonical form the API server stores, so a re-read compares equal. */
function resourcesOf(resources: Resources | undefined): Pick<V1Container, 'resources'> {
  if (resources === undefined || (resources.cpu === undefined && resources.memory === undefined)) return {};
  const amounts: Record<string, string> = {};
  if (resources.cpu !== undefined) amounts.cpu = canonicalCpu(resources.cpu);
  if (resources.memory !== undefined) amounts.memory = canonicalMemory(resources.memory);
  return { resources: { requests: amounts, limits: amounts } };
}

function canonicalCpu(cpu: string): string {
  const millis = Math.ceil((parseQuantity(cpu) ?? 0) * 1000);
  return millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`;
}

function canonicalMemory(memory: string): string {
  const bytes = parseQuantity(memory) ?? 0;
  const binary = !/[kMGTPE]$/.test(memory.trim());
  const steps = binary ? ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] : ['', 'k', 'M', 'G', 'T', 'P', 'E'];
  const base = binary ? 1024 : 1000;
  let value = Math.ceil(bytes);
  let step = 0;
  while (step < steps.length - 1 && value % base === 0 && value > 0) {
    value /= base;
    step++;
  }
  return `${value}${steps[step] ?? ''}`;
}

function writablePaths(pods: PodSettings): readonly string[] {
  return [...new Set(pods.writablePaths ?? ['/tmp'])];
}

/**
 * Ingress only from berth's pods on the MCP port; egress to cluster DNS and
 * the declared CIDRs, with refused ranges cut out of them.
 */
function networkPolicy(metadata: KubeObject['metadata'], selector: Readonly<Record<string, string>>, port: number, settings: KubernetesSettings, pods: PodSettings): KubeObject {
  const blocks = egressBlocks(pods.egress ?? []);
  const dns = {
    to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
    ports: [
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ],
  };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata,
    spec: {
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: settings.berthPodLabels } }], ports: [{ protocol: 'TCP', port }] }],
      egress: [dns, ...(blocks.length === 0 ? [] : [{ to: blocks.map((ipBlock) => ({ ipBlock })) }])],
    },
  };
}

function mapValues(record: Readonly<Record<string, string>>, map: (value: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, map(v)]));
}

