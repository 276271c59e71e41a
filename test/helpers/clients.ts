import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';
import type { ParseResult } from '../../src/config/load.ts';
import { placeholderEnv } from '../../src/clients/render.ts';

export const clientFixtures = fileURLToPath(new URL('../fixtures/clients/', import.meta.url));

/** Every client config fixture (not the expected outputs beside them), relative to the fixture folder. */
export function clientFixtureFiles(dir = clientFixtures): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(json|toml)$/.test(f) && statSync(path.join(dir, f)).isFile())
    .sort();
}

/** A berth.yaml around imported servers: a docker backend for container servers, an apiKey user so `fromUser` credentials have someone to ask. */
export function berthAround(fragment: string): string {
  return `version: 1\nbackend: { type: docker }\nauth:\n  - type: apiKey\n    keys: [{ user: alice, sha256: "${'0'.repeat(64)}" }]\n${fragment}`;
}

/** Loads config text as berth would, with every `${env:…}` and `${file:…}` set to a placeholder. */
export function loadWithPlaceholders(text: string): ParseResult {
  return parseConfig('berth.yaml', text, { env: placeholderEnv(text), readFile: () => 'placeholder', baseDir: '/berth-fixtures' });
}
