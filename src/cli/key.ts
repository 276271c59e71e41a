import { newApiKey } from '../auth/api-key.ts';
import { exitCode } from './output.ts';

export interface KeyNewOptions {
  readonly user: string;
  readonly groups?: readonly string[];
}

/** The `keys:` entry of an apiKey provider for this key; strings JSON-quoted, which YAML reads as is. */
export function keyEntryYaml(user: string, groups: readonly string[], sha256: string): string {
  const groupsPart = groups.length === 0 ? '' : `, groups: [${groups.map((g) => JSON.stringify(g)).join(', ')}]`;
  return `- { user: ${JSON.stringify(user)}${groupsPart}, sha256: "${sha256}" }`;
}

/**
 * `berth key new --user alice [--groups a,b]`: a fresh key, shown once, and
 * the config line holding only its hash. The key goes to stdout alone on its
 * first line so scripts can take it; the rest is for the operator.
 */
export function runKeyNew(options: KeyNewOptions, out: NodeJS.WritableStream = process.stdout): number {
  const { key, sha256 } = newApiKey();
  out.write(`${key}\n`);
  out.write(`\n# Give the key above to ${options.user}; berth keeps only its hash. Add under \`keys:\` of an apiKey provider:\n`);
  out.write(`${keyEntryYaml(options.user, options.groups ?? [], sha256)}\n`);
  return exitCode.ok;
}
