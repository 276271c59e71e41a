// The docker backend's settings from the config's `backend` block, defaults filled.
import type { Backend as BackendConfig } from '../../config/types.gen.ts';
import type { DockerSettings } from './spec.ts';

const PIDS_LIMIT = 512;

export function dockerSettings(config: BackendConfig): DockerSettings & { readonly socket: string } {
  const owner = config.owner ?? 'default';
  // The same field as the Kubernetes backend's; validation allows Docker only none (internal) or everything.
  const egress = config.pods?.egress ?? [];
  return {
    socket: config.socket ?? '/var/run/docker.sock',
    owner,
    network: config.network ?? `berth-${owner}`,
    networkMode: config.networkMode ?? 'published',
    publishHost: config.publishHost ?? '127.0.0.1',
    pull: config.pull ?? 'if-not-present',
    runtimeImage: config.runtimeImage ?? 'berth:latest',
    readOnlyRootFilesystem: config.readOnlyRootFilesystem ?? true,
    tmpfs: config.tmpfs ?? ['/tmp'],
    pidsLimit: PIDS_LIMIT,
    egress,
  };
}
