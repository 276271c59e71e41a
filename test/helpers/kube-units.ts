// Units for the Kubernetes backend's tests, from config text, as berth resolves them.
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';
import { resolveDesiredState } from '../../src/desired/resolve.ts';
import type { Unit } from '../../src/desired/types.ts';
import type { Capabilities } from './backend-contract.ts';

/**
 * What the Kubernetes backend does, whichever API server it talks to (the
 * fake or a real one): only the runtimes each can run differ.
 */
export const KUBERNETES_BEHAVIOUR = {
  outlivesBerth: true,
  replace: 'in-place',
  startFailure: 'reported',
  replicas: true,
  // A deleted pod terminates through its grace period, listed until its kubelet removes it.
  scaleDown: 'eventually',
} as const satisfies Omit<Capabilities, 'runtimes'>;

/** The units of `servers` (YAML under `servers:`) on a kubernetes backend in `namespace`. */
export function kubernetesUnits(namespace: string, servers: string): Unit[] {
  const result = parseConfig('berth.yaml', `version: 1\nbackend: { type: kubernetes, namespace: ${namespace} }\nauth: [{ type: apiKey, keys: [{ user: alice, sha256: "${'a'.repeat(64)}" }] }]\nservers:\n${servers}`, { env: {}, readFile: () => '', baseDir: '/' });
  assert.ok(result.ok, JSON.stringify(result.ok ? [] : result.issues));
  return [...resolveDesiredState(result.value).units];
}
