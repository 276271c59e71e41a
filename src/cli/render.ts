import { stringify } from 'yaml';
import { ConfigError } from '../config/issues.ts';
import { loadConfigFile } from '../config/load.ts';
import { resolveDesiredState } from '../desired/resolve.ts';
import { renderPlacement } from '../backends/kubernetes/objects.ts';
import { resolveKubernetesSettings } from '../backends/kubernetes/settings.ts';
import { exitCode } from './output.ts';
import { printIssues } from './validate.ts';

export interface RenderOptions {
  readonly owner?: string;
  /** Secrets hold credentials: printed only when asked, since rendered YAML usually goes into git. */
  readonly secrets: 'omit' | 'include';
}

/**
 * `berth render [FILE]`: the Kubernetes objects `berth serve` would apply,
 * as multi-document YAML for a GitOps tool to apply instead. Per-user
 * instances exist only once a user arrives, so they are not rendered.
 */
export function runRender(file: string, options: RenderOptions): number {
  let desired;
  let backend;
  try {
    const loaded = loadConfigFile(file);
    desired = resolveDesiredState(loaded);
    backend = loaded.config.backend;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printIssues(err.issues);
    return exitCode.failed;
  }
  if (desired.backend !== 'kubernetes') process.stderr.write(`berth: ${file} names backend ${desired.backend}; rendering with Kubernetes defaults\n`);
  const settings = resolveKubernetesSettings(backend?.type === 'kubernetes' ? backend : undefined, options.owner);
  const docs: string[] = [`# berth render ${file}: ${desired.units.length} hosted server(s), namespace ${settings.namespace}, owner ${settings.owner}\n`];
  for (const unit of desired.units) {
    if (unit.scope === 'per-user') {
      docs.push(`# ${unit.name}: single-user; berth creates one set of objects per user at first use\n`);
      continue;
    }
    for (const object of renderPlacement({ unit }, settings).objects) {
      if (object.kind === 'Secret' && options.secrets === 'omit') {
        const keys = Object.keys((object as { data?: Record<string, string> }).data ?? {}).join(', ');
        docs.push(`# Secret ${object.metadata.name} omitted (keys: ${keys}): create it yourself, or pass --secrets include\n`);
        continue;
      }
      docs.push(stringify(object, { lineWidth: 0, aliasDuplicateObjects: false }));
    }
  }
  process.stdout.write(docs.map((doc) => `---\n${doc}`).join(''));
  return exitCode.ok;
}
