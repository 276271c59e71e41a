// What the Kubernetes API does that berth's backend meets, checked on any
// cluster through @kubernetes/client-node: the fake API server
// (fake-kube.test.ts) and the real control plane
// (kubernetes-cases-real.test.ts) run the same cases, so a difference between
// the two fails one of them. Each case works in the namespace it is given.
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { waitFor } from './wait.ts';

export interface ApiCaseOptions {
  readonly config: k8s.KubeConfig;
  readonly namespace: string;
  /** An image whose container runs and listens (the real node needs one it has). */
  readonly image: string;
  /** How long a pod may take to run, or to go. */
  readonly podMs: number;
}

export interface ApiCase {
  readonly name: string;
  readonly run: (options: ApiCaseOptions) => Promise<void>;
}

/** A Deployment whose pods Pod Security `restricted` admits, as berth renders them. */
function deployment(namespace: string, name: string, image: string, replicas: number, extra: { env?: object[]; labels?: Record<string, string>; args?: string[]; annotations?: Record<string, string> } = {}): k8s.KubernetesObject & { spec: object } {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { ...labels, ...extra.labels } },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels, ...(extra.annotations === undefined ? {} : { annotations: extra.annotations }) },
        spec: {
          terminationGracePeriodSeconds: 5,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{
            name: 'server',
            image,
            ...(extra.env === undefined ? {} : { env: extra.env }),
            ...(extra.args === undefined ? {} : { args: extra.args }),
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
          }],
        },
      },
    },
  };
}

const apply = (api: k8s.KubernetesObjectApi, object: k8s.KubernetesObject): Promise<k8s.KubernetesObject> => api.patch(object, undefined, undefined, 'api-cases', true, k8s.PatchStrategy.ServerSideApply);

async function podsOf(config: k8s.KubeConfig, namespace: string, app: string): Promise<k8s.V1Pod[]> {
  return (await config.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace, labelSelector: `app=${app}` })).items;
}

async function replicaSetsOf(config: k8s.KubeConfig, namespace: string, app: string): Promise<k8s.V1ReplicaSet[]> {
  return (await config.makeApiClient(k8s.AppsV1Api).listNamespacedReplicaSet({ namespace, labelSelector: `app=${app}` })).items;
}

export const API_CASES: readonly ApiCase[] = [
  {
    name: 'empty lists and empty strings of typed fields are dropped on write; an empty label value is kept',
    run: async ({ config, namespace, image }) => {
      const api = k8s.KubernetesObjectApi.makeApiClient(config);
      await apply(api, deployment(namespace, 'empties', image, 0, { env: [{ name: 'EMPTY', value: '' }], args: [], labels: { blank: '' } }));
      const live = (await api.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'empties', namespace } })) as k8s.V1Deployment;
      const container = live.spec?.template.spec?.containers[0];
      assert.deepEqual(JSON.parse(JSON.stringify(container?.env)), [{ name: 'EMPTY' }], 'the empty value is gone, the name stays');
      assert.equal(container?.args, undefined, 'the empty list is gone');
      assert.equal(live.metadata?.labels?.blank, '', 'a map keeps its empty values');
    },
  },
  {
    name: 'a Deployment\'s pods belong to a ReplicaSet per template; a rollout makes a second and scales the first to zero',
    run: async ({ config, namespace, image, podMs }) => {
      const api = k8s.KubernetesObjectApi.makeApiClient(config);
      await apply(api, deployment(namespace, 'sets', image, 1));
      const [first] = await waitFor(async () => {
        const sets = await replicaSetsOf(config, namespace, 'sets');
        return sets.length === 1 && sets[0]?.status?.readyReplicas === 1 ? sets : undefined;
      }, { timeoutMs: podMs, intervalMs: 100, message: 'one ReplicaSet with a ready pod' });
      assert.deepEqual(first?.metadata?.ownerReferences?.map((o) => `${o.kind}/${o.name}/${String(o.controller)}`), ['Deployment/sets/true']);
      const [pod] = await podsOf(config, namespace, 'sets');
      assert.deepEqual(pod?.metadata?.ownerReferences?.map((o) => `${o.kind}/${o.name}`), [`ReplicaSet/${first?.metadata?.name ?? ''}`]);
      assert.equal(pod?.metadata?.labels?.['pod-template-hash'], first?.metadata?.labels?.['pod-template-hash']);
      await apply(api, deployment(namespace, 'sets', image, 1, { annotations: { rollout: '2' } }));
      await waitFor(async () => {
        const sets = await replicaSetsOf(config, namespace, 'sets');
        const old = sets.find((s) => s.metadata?.name === first?.metadata?.name);
        const next = sets.find((s) => s.metadata?.name !== first?.metadata?.name);
        return sets.length === 2 && old?.spec?.replicas === 0 && next?.spec?.replicas === 1 && next.status?.readyReplicas === 1;
      }, { timeoutMs: podMs, intervalMs: 100, message: 'a second ReplicaSet serving, the first at zero' });
    },
  },
  {
    name: 'a deleted pod terminates through its grace period, replaced at once, then goes',
    run: async ({ config, namespace, image, podMs }) => {
      const api = k8s.KubernetesObjectApi.makeApiClient(config);
      await apply(api, deployment(namespace, 'graceful', image, 1));
      const pod = await waitFor(async () => (await podsOf(config, namespace, 'graceful')).find((p) => p.status?.phase === 'Running'), { timeoutMs: podMs, intervalMs: 100, message: 'a running pod' });
      const name = pod.metadata?.name ?? '';
      const core = config.makeApiClient(k8s.CoreV1Api);
      // The answer to DELETE is the pod as it is now: still there, terminating.
      const deleted = (await core.deleteNamespacedPod({ name, namespace })) as k8s.V1Pod;
      assert.ok(deleted.metadata?.deletionTimestamp !== undefined, 'marked for deletion, not gone');
      assert.equal(deleted.metadata?.deletionGracePeriodSeconds, 5, 'the pod\'s own grace period');
      await waitFor(async () => {
        const pods = await podsOf(config, namespace, 'graceful');
        return !pods.some((p) => p.metadata?.name === name) && pods.some((p) => p.metadata?.deletionTimestamp === undefined);
      }, { timeoutMs: podMs, intervalMs: 100, message: 'the pod gone, a replacement there' });
    },
  },
  {
    name: 'a NetworkPolicy\'s ipBlock is refused (422) in IPv4-mapped form or with host bits set; a plain block is accepted',
    run: async ({ config, namespace }) => {
      const api = k8s.KubernetesObjectApi.makeApiClient(config);
      const policy = (name: string, cidr: string): k8s.KubernetesObject & { spec: object } => ({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name, namespace },
        spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr } }] }] },
      });
      const refusal = async (cidr: string): Promise<string> => {
        const err = await apply(api, policy('refused', cidr)).then(() => undefined, (e: unknown) => e as { code?: number; body?: string });
        assert.equal(err?.code, 422, `${cidr} refused as invalid`);
        return String(err.body);
      };
      assert.match(await refusal('::ffff:0:0/96'), /spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidr: Invalid value: \\?"::ffff:0:0\/96\\?": must not have an IPv4-mapped IPv6 address/);
      assert.match(await refusal('::ffff:10.0.0.0/104'), /IPv4-mapped/);
      assert.match(await refusal('10.0.0.1/8'), /must not have bits set beyond the prefix length/);
      await apply(api, policy('plain', '10.0.0.0/8'));
      await apply(api, policy('plain6', '2001:db8::/32'));
    },
  },
];
