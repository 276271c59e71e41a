import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { Backend as BackendConfig } from '../../config/types.gen.ts';
import { BackendError } from '../backend.ts';

/**
 * Where the API server is: `backend.kubeconfig`, else in-cluster when berth
 * runs in a pod and no context is named (`env` tells), else `env`'s
 * KUBECONFIG or ~/.kube/config as kubectl reads them;
 * then `backend.context` when set.
 */
export function loadKubeConfig(backend: Pick<BackendConfig, 'kubeconfig' | 'context'>, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const config = new KubeConfig();
  try {
    if (backend.kubeconfig !== undefined) config.loadFromFile(backend.kubeconfig);
    else if (backend.context === undefined && env.KUBERNETES_SERVICE_HOST !== undefined) config.loadFromCluster();
    else if (env.KUBECONFIG !== undefined && env.KUBECONFIG !== '') loadFromPaths(config, env.KUBECONFIG);
    else config.loadFromDefault();
  } catch (err) {
    throw new BackendError('invalid_spec', `cannot read the kubeconfig${backend.kubeconfig === undefined ? '' : ` ${backend.kubeconfig}`}: ${(err as Error).message}`, { retryable: false, cause: err });
  }
  if (backend.context !== undefined) {
    const names = config.getContexts().map((c) => c.name);
    if (!names.includes(backend.context)) {
      throw new BackendError('invalid_spec', `the kubeconfig has no context ${backend.context}; it has: ${names.join(', ') || 'none'}`, { retryable: false });
    }
    config.setCurrentContext(backend.context);
  }
  if (config.getCurrentCluster() === null) throw new BackendError('invalid_spec', 'no Kubernetes cluster configured: set backend.kubeconfig or KUBECONFIG, or run berth in a pod', { retryable: false });
  return config;
}

/**
 * KUBECONFIG as client-node's loadFromDefault reads it (files joined by the
 * path delimiter, merged in order), but from `env`: the library reads only
 * process.env, and a caller (a test) must be able to say which.
 */
function loadFromPaths(config: KubeConfig, paths: string): void {
  const [first, ...rest] = paths.split(path.delimiter).filter((p) => p !== '');
  if (first === undefined) return config.loadFromDefault();
  config.loadFromFile(first);
  for (const file of rest) {
    const next = new KubeConfig();
    next.loadFromFile(file);
    config.mergeConfig(next);
  }
}
