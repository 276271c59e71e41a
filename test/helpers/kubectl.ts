// Debian's kubectl against the real test cluster only: its kubeconfig is the
// one BERTH_TEST_KUBECONFIG names, never an inherited KUBECONFIG or ~/.kube.
import { spawnSync } from 'node:child_process';
import { CLUSTER_ENV } from './cluster.ts';

export interface KubectlResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Why kubectl cannot run here, or undefined when it can. */
export function kubectlMissing(): string | undefined {
  return spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0 ? undefined : 'kubectl is not installed (Debian: apt-get install kubectl)';
}

/** `kubectl ARGS` on the test cluster, `input` on its stdin; bounded in time. */
export function kubectl(args: readonly string[], input?: string): KubectlResult {
  const { KUBECONFIG: _inherited, ...env } = process.env;
  const result = spawnSync('kubectl', ['--kubeconfig', process.env[CLUSTER_ENV] ?? '', ...args], { input, encoding: 'utf8', env, timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
