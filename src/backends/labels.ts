// The one vocabulary berth writes on what it runs (containers, pods and the
// objects around them): a restarted berth finds, adopts and cleans up its own
// by these keys alone, whichever backend made them.
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  /** The berth instance that owns it; another owner's is never touched. */
  owner: 'berth.dev/owner',
  server: 'berth.dev/server',
  /** A hash of the user a per-user instance serves, never the identity. */
  user: 'berth.dev/user',
  specHash: 'berth.dev/spec-hash',
  /** 0-based replica index, where the backend names replicas itself (Docker). */
  replica: 'berth.dev/replica',
  /** Hash of the backend settings a container was made with; a change recreates it. */
  settings: 'berth.dev/settings',
} as const;

export const ANNOTATIONS = {
  /** Hash of the object as berth rendered it: equal means nothing to write, unless someone else changed it. */
  appliedHash: 'berth.dev/applied-hash',
  /** On the pod template: a changed Secret changes the template, which is exactly one rollout. */
  secretChecksum: 'berth.dev/secret-checksum',
  /** Where in the instance the MCP endpoint is: port, path and transport. */
  port: 'berth.dev/mcp-port',
  path: 'berth.dev/mcp-path',
  transport: 'berth.dev/mcp-transport',
} as const;

/** Labels on everything a berth owner made; listing and orphan removal select by them. */
export function ownerLabels(owner: string): Record<string, string> {
  return { [LABELS.managedBy]: 'berth', [LABELS.owner]: owner };
}
