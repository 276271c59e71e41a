// The few API calls the backend makes, through @kubernetes/client-node, with
// the API's refusals turned into BackendErrors that say whether a retry helps.
import * as k8s from '@kubernetes/client-node';
// The client's own (de)serializer: it maps between API JSON and its models, whose
// fields named after reserved words differ (`from` is `_from`). Not re-exported by the package.
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { BackendError } from '../backend.ts';
import { FIELD_MANAGER } from './objects.ts';
import type { KubeObject } from './objects.ts';

export type Header = Pick<KubeObject, 'apiVersion' | 'kind'> & { readonly metadata: { readonly name: string; readonly namespace: string } };

export class KubeApi {
  readonly config: k8s.KubeConfig;
  /** Write calls made (apply, patch, delete): what "zero writes" is measured by, on any cluster. */
  writes = 0;
  readonly #objects: k8s.KubernetesObjectApi;
  readonly #core: k8s.CoreV1Api;
  readonly #auth: k8s.AuthorizationV1Api;

  constructor(config: k8s.KubeConfig) {
    this.config = config;
    this.#objects = k8s.KubernetesObjectApi.makeApiClient(config);
    this.#core = config.makeApiClient(k8s.CoreV1Api);
    this.#auth = config.makeApiClient(k8s.AuthorizationV1Api);
  }

  /** The live object as a client model, or undefined when it does not exist. */
  async read<T extends k8s.KubernetesObject>(header: Header, signal: AbortSignal): Promise<T | undefined> {
    return call(signal, async () => (await this.#objects.read(header)) as T, true);
  }

  /** The live object as API JSON, comparable with what berth renders. */
  async readJson(header: Header, signal: AbortSignal): Promise<KubeObject | undefined> {
    const model = await this.read(header, signal);
    return model === undefined ? undefined : (ObjectSerializer.serialize(model, modelType(header), '') as KubeObject);
  }

  async list<T extends k8s.KubernetesObject>(apiVersion: string, kind: string, namespace: string, labelSelector: string, signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string }> {
    return call(signal, async () => {
      const list = await this.#objects.list<T>(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
      return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
    }, false) as Promise<{ items: T[]; resourceVersion: string }>;
  }

  /** Server-side apply as field manager `berth`, taking over fields someone else changed (drift repair). */
  async apply(object: KubeObject, signal: AbortSignal): Promise<void> {
    this.writes++;
    // Given plain JSON the client would drop fields its models rename; hand it a model.
    const model = ObjectSerializer.deserialize(object, modelType(object), '') as k8s.KubernetesObject;
    await call(signal, () => this.#objects.patch(model, undefined, undefined, FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply), false);
  }

  /** A JSON merge patch for the one field berth changes outside an apply (replicas on removal, a pod's deletion cost). */
  async mergePatch(header: Header, patch: { readonly metadata?: object; readonly spec?: object }, signal: AbortSignal): Promise<void> {
    this.writes++;
    await call(signal, () => this.#objects.patch({ ...patch, apiVersion: header.apiVersion, kind: header.kind, metadata: { ...patch.metadata, ...header.metadata } } as k8s.KubernetesObject, undefined, undefined, `${FIELD_MANAGER}-scale`, undefined, k8s.PatchStrategy.MergePatch), false);
  }

  /** Deletes an object; one that is gone already is fine. */
  async delete(header: Header, signal: AbortSignal): Promise<void> {
    this.writes++;
    await call(signal, () => this.#objects.delete(header as k8s.KubernetesObject, undefined, undefined, undefined, undefined, 'Background'), true);
  }

  async podLog(name: string, namespace: string, tail: number, signal: AbortSignal): Promise<string> {
    return (await call(signal, () => this.#core.readNamespacedPodLog({ name, namespace, container: 'server', tailLines: tail }), true)) ?? '';
  }

  /** Whether the credentials berth runs with may do `verb` on a resource in the namespace. */
  async mayDo(verb: string, group: string, resource: string, namespace: string, signal: AbortSignal): Promise<boolean> {
    const review = await call(signal, () => this.#auth.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb, group, resource, namespace } } } }), false);
    return review?.status?.allowed === true;
  }
}

/** The client's model name of a kind: `V1NetworkPolicy`, `V2HorizontalPodAutoscaler`. */
function modelType(header: Pick<Header, 'apiVersion' | 'kind'>): string {
  const version = header.apiVersion.split('/').at(-1) ?? '';
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${header.kind}`;
}

async function call<T>(signal: AbortSignal, run: () => Promise<T>, missingIsUndefined: boolean): Promise<T | undefined> {
  if (signal.aborted) throw new BackendError('aborted', 'the request was cancelled', { retryable: true, cause: signal.reason });
  try {
    return await run();
  } catch (err) {
    if (missingIsUndefined && err instanceof k8s.ApiException && err.code === 404) return undefined;
    throw toBackendError(err);
  }
}

/** The API's answer as a BackendError: its status message, and whether waiting can help. */
export function toBackendError(err: unknown): BackendError {
  if (!(err instanceof k8s.ApiException)) {
    return new BackendError('backend_unreachable', `cannot reach the Kubernetes API: ${(err as Error).message}`, { retryable: true, cause: err });
  }
  const message = statusMessage(err);
  const code = err.code as number;
  if (code === 403 && message.includes('exceeded quota')) return new BackendError('insufficient_capacity', message, { retryable: true, cause: err });
  if (code === 401 || code === 403) return new BackendError('forbidden', message, { retryable: false, cause: err });
  if (code === 404) return new BackendError('instance_not_found', message, { retryable: false, cause: err });
  if (code === 400 || code === 422) return new BackendError('invalid_spec', message, { retryable: false, cause: err });
  return new BackendError('backend_unreachable', message, { retryable: true, cause: err });
}

function statusMessage(err: k8s.ApiException<unknown>): string {
  const body = err.body;
  try {
    const parsed = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: string };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Not a Status document: fall back to the HTTP code.
  }
  return `the Kubernetes API answered ${err.code}`;
}
