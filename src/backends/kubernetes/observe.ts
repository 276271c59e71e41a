// What berth sees in the cluster, as instances: one per pod, plus a
// placeholder for each replica a Deployment wants but has no pod for yet, so
// a Deployment that cannot get pods (quota, a broken template) is still
// visible, reported and removable. Pure: objects in, instances out.
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { FailureClass, InstanceState, ObservedInstance } from '../backend.ts';
import { LABELS } from '../labels.ts';

/** Instance id of a replica that has no pod yet. */
export function placeholderId(deployment: string, index: number): string {
  return `${deployment}#${index}`;
}

export function parsePlaceholder(id: string): { deployment: string; index: number } | undefined {
  const match = /^(.+)#(\d+)$/.exec(id);
  return match === null ? undefined : { deployment: match[1] ?? '', index: Number(match[2]) };
}

/** Pods belong to the Deployment whose server and user labels they carry. */
export function belongsTo(pod: V1Pod, deployment: V1Deployment): boolean {
  const [p, d] = [pod.metadata?.labels ?? {}, deployment.metadata?.labels ?? {}];
  return p[LABELS.owner] === d[LABELS.owner] && p[LABELS.server] === d[LABELS.server] && p[LABELS.user] === d[LABELS.user];
}

export function observeInstances(deployments: readonly V1Deployment[], pods: readonly V1Pod[]): ObservedInstance[] {
  return deployments.flatMap((deployment) => observeDeployment(deployment, pods.filter((p) => belongsTo(p, deployment))));
}

export function observeDeployment(deployment: V1Deployment, pods: readonly V1Pod[]): ObservedInstance[] {
  const labels = deployment.metadata?.labels ?? {};
  const specHash = labels[LABELS.specHash] ?? '';
  const sorted = [...pods].sort((a, b) => podRank(a, specHash) - podRank(b, specHash) || ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1));
  const instances = sorted.map((pod, replica) => observePod(pod, replica));
  const wanted = deployment.spec?.replicas ?? 1;
  const current = sorted.filter((p) => p.metadata?.labels?.[LABELS.specHash] === specHash && p.metadata.deletionTimestamp === undefined).length;
  const refusal = deployment.status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  for (let index = current; index < wanted; index++) {
    instances.push({
      id: placeholderId(deployment.metadata?.name ?? '', index),
      owner: labels[LABELS.owner] ?? '',
      unit: labels[LABELS.server] ?? '',
      ...(labels[LABELS.user] === undefined ? {} : { userHash: labels[LABELS.user] }),
      specHash,
      replica: index,
      restarts: 0,
      // A quota refusal of pods shows only here, on the Deployment.
      ...(refusal === undefined
        ? { state: 'creating' as const }
        : { state: 'failed' as const, failure: refusal.message?.includes('exceeded quota') === true ? ('insufficient-capacity' as const) : ('start-failed' as const), lastError: refusal.message ?? refusal.reason ?? 'ReplicaFailure' }),
      detail: `deployment ${deployment.metadata?.name ?? ''}: no pod yet`,
    });
  }
  return instances;
}

function podRank(pod: V1Pod, specHash: string): number {
  return pod.metadata?.labels?.[LABELS.specHash] === specHash ? 0 : 1;
}

export function observePod(pod: V1Pod, replica: number): ObservedInstance {
  const labels = pod.metadata?.labels ?? {};
  const { state, failure, lastError } = classify(pod);
  const started = pod.status?.containerStatuses?.[0]?.state?.running?.startedAt;
  return {
    id: pod.metadata?.name ?? '',
    owner: labels[LABELS.owner] ?? '',
    unit: labels[LABELS.server] ?? '',
    ...(labels[LABELS.user] === undefined ? {} : { userHash: labels[LABELS.user] }),
    specHash: labels[LABELS.specHash] ?? '',
    replica,
    state,
    restarts: (pod.status?.containerStatuses ?? []).reduce((sum, c) => sum + c.restartCount, 0),
    ...(failure === undefined ? {} : { failure }),
    ...(lastError === undefined ? {} : { lastError }),
    ...(started === undefined ? {} : { startedAt: new Date(started).toISOString() }),
    detail: `pod ${pod.metadata?.name ?? ''}`,
  };
}

interface Classified {
  readonly state: InstanceState;
  readonly failure?: FailureClass;
  readonly lastError?: string;
}

/** Waiting reasons that no wait can fix: report them at once. */
const FAIL_FAST: Readonly<Record<string, FailureClass>> = {
  InvalidImageName: 'image-missing',
  ErrImageNeverPull: 'image-missing',
  CreateContainerConfigError: 'config-error',
  CreateContainerError: 'config-error',
  RunContainerError: 'start-failed',
};
/** Waiting reasons that may resolve: the pool waits until the startup deadline. */
const WAIT: Readonly<Record<string, FailureClass>> = { ImagePullBackOff: 'pulling', ErrImagePull: 'pulling' };

/** A pod's state in the words of the contract, with the cluster's own message. */
export function classify(pod: V1Pod): Classified {
  if (pod.metadata?.deletionTimestamp !== undefined) return { state: 'stopping' };
  const status = pod.status;
  if (status?.phase === 'Succeeded') return { state: 'exited', failure: 'exited', lastError: 'the server exited' };
  if (status?.phase === 'Failed') return { state: 'failed', failure: 'start-failed', lastError: status.message ?? status.reason ?? 'pod failed' };
  const unschedulable = status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable');
  if (unschedulable !== undefined) return { state: 'creating', failure: 'unschedulable', lastError: unschedulable.message ?? 'Unschedulable' };
  for (const container of status?.containerStatuses ?? []) {
    const waiting = container.state?.waiting;
    const reason = waiting?.reason ?? '';
    const message = waiting?.message ?? reason;
    if (reason === 'CrashLoopBackOff') {
      const terminated = container.lastState?.terminated;
      const oom = terminated?.reason === 'OOMKilled';
      return { state: 'crash-looping', failure: oom ? 'oom-killed' : 'crash-loop', lastError: oom ? `OOMKilled (exit ${terminated?.exitCode ?? 137}); ${message}` : `${terminated?.reason ?? 'exited'} (exit ${terminated?.exitCode ?? '?'}); ${message}` };
    }
    const fatal = FAIL_FAST[reason];
    if (fatal !== undefined) return { state: 'failed', failure: fatal, lastError: `${reason}: ${message}` };
    const wait = WAIT[reason];
    if (wait !== undefined) return { state: 'creating', failure: wait, lastError: `${reason}: ${message}` };
  }
  const ready = status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  return { state: status?.phase === 'Running' && ready ? 'running' : 'creating' };
}
