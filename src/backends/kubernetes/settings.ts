import type { Backend as BackendConfig, PodSettings } from '../../config/types.gen.ts';
import type { KubernetesSpec } from '../../desired/types.ts';
import { BackendError } from '../backend.ts';

/** The backend-wide Kubernetes settings, defaults filled; what object generation needs besides a unit. */
export interface KubernetesSettings {
  readonly namespace: string;
  /** The berth instance owning the objects: a label value and the prefix of every object name. */
  readonly owner: string;
  readonly bridgeImage: string;
  readonly berthPodLabels: Readonly<Record<string, string>>;
  readonly serviceAccount?: string;
  readonly networkPolicy: boolean;
  readonly pods: PodSettings;
}

export const DEFAULT_BRIDGE_IMAGE = 'ghcr.io/berth-dev/berth:0.1.0';
export const DEFAULT_OWNER = 'berth';
const OWNER = /^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$/;

/** Settings from the config's `backend` block (any type: rendering works whatever backend the file names). */
export function resolveKubernetesSettings(backend: BackendConfig | undefined, owner = DEFAULT_OWNER): KubernetesSettings {
  // The owner starts every object name, so it must keep them valid DNS labels with room for the server name.
  if (!OWNER.test(owner)) throw new BackendError('invalid_spec', `owner ${JSON.stringify(owner)} must be 1-20 lowercase letters, digits and '-', starting with a letter`, { retryable: false });
  return {
    namespace: backend?.namespace ?? 'default',
    owner,
    bridgeImage: backend?.bridgeImage ?? DEFAULT_BRIDGE_IMAGE,
    berthPodLabels: backend?.berthPodLabels === undefined ? { 'app.kubernetes.io/name': 'berth' } : definedValues(backend.berthPodLabels),
    ...(backend?.serviceAccount === undefined ? {} : { serviceAccount: backend.serviceAccount }),
    networkPolicy: backend?.networkPolicy ?? true,
    pods: backend?.pods ?? {},
  };
}

/** A server's pod settings: each key it sets replaces the backend's. */
export function podSettingsFor(settings: KubernetesSettings, server: KubernetesSpec | undefined): PodSettings {
  const { autoscale: _autoscale, ...own } = server ?? {};
  return { ...settings.pods, ...own };
}

/** Generated map types allow undefined values (absent keys); Kubernetes maps do not. */
export function definedValues(record: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).filter((e): e is [string, string] => e[1] !== undefined));
}
