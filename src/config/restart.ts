import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import canonicalize from 'canonicalize';
import { configSchema } from './schema.ts';
import type { BerthConfiguration } from './types.gen.ts';

/** The sections berth reads once, at start-up: a change to them is applied only by a restart. */
// `state`: the store (its path and keys) is opened once; a changed key would otherwise be believed in force.
// `telemetry`: the SDK and its exporters are set up once, before anything carries traffic.
const AT_START_UP = ['listen', 'backend', 'state', 'telemetry'] as const;

type StartUp = Pick<BerthConfiguration, 'listen' | 'backend' | 'state' | 'telemetry'>;

/**
 * The fields whose change between two configs needs a restart of berth, as
 * dotted paths (`listen.port`, `backend.type`), sorted. A whole list that
 * differs (`listen.allowedOrigins`) is one path. Values are never returned,
 * so secrets cannot leak through it.
 */
export function restartRequired(previous: StartUp, next: StartUp): string[] {
  return changedFields(startUpFields(previous), startUpFields(next));
}

/**
 * A hash of every start-up field, defaults filled in, by dotted path: what a
 * running berth reports in /status so that `plan --running` can tell which
 * of them a config changes without seeing their values.
 */
export function startUpHashes(config: StartUp): Record<string, string> {
  const fields = startUpFields(config);
  return Object.fromEntries(Object.entries(fields).map(([path, value]) => [path, hashOf(value)]));
}

/** The paths whose hashes differ between a running berth's report and a config. */
export function restartRequiredByHash(running: Readonly<Record<string, string>>, next: StartUp): string[] {
  return changedFields(running, startUpHashes(next));
}

function changedFields(before: Readonly<Record<string, unknown>>, after: Readonly<Record<string, unknown>>): string[] {
  const paths = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...paths].filter((p) => !isDeepStrictEqual(before[p], after[p])).sort();
}

function startUpFields(config: StartUp): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const section of AT_START_UP) {
    for (const [key, value] of Object.entries(withDefaults(section, config[section]))) out[`${section}.${key}`] = value;
  }
  return out;
}

function hashOf(value: unknown): string {
  return createHash('sha256').update((canonicalize as unknown as (v: unknown) => string)(value ?? null)).digest('hex').slice(0, 16);
}

type Section = (typeof AT_START_UP)[number];

/** A section with the schema's defaults filled in: writing `port: 8080` changes nothing. */
function withDefaults(section: Section, value: object | undefined): Readonly<Record<string, unknown>> {
  const defs = configSchema['$defs'] as Record<string, { properties?: Record<string, { default?: unknown }> }>;
  const defaults = Object.entries(defs[section]?.properties ?? {}).flatMap(([key, schema]) => (schema.default === undefined ? [] : [[key, schema.default]]));
  return { ...Object.fromEntries(defaults), ...value };
}
