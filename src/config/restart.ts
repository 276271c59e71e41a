import { isDeepStrictEqual } from 'node:util';
import { configSchema } from './schema.ts';
import type { BerthConfiguration } from './types.gen.ts';

/** The sections berth reads once, at start-up: a change to them is applied only by a restart. */
const AT_START_UP = ['listen', 'backend', 'telemetry'] as const;

/**
 * The fields whose change between two configs needs a restart of berth, as
 * dotted paths (`listen.port`, `backend.type`), sorted. A whole list that
 * differs (`listen.allowedOrigins`) is one path. Values are never returned,
 * so secrets cannot leak through it.
 */
export function restartRequired(previous: Pick<BerthConfiguration, Section>, next: Pick<BerthConfiguration, Section>): string[] {
  const changed: string[] = [];
  for (const section of AT_START_UP) {
    const before = withDefaults(section, previous[section]);
    const after = withDefaults(section, next[section]);
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (!isDeepStrictEqual(before[key], after[key])) changed.push(`${section}.${key}`);
    }
  }
  return changed.sort();
}

type Section = (typeof AT_START_UP)[number];

/** A section with the schema's defaults filled in: writing `port: 8080` changes nothing. */
function withDefaults(section: Section, value: object | undefined): Readonly<Record<string, unknown>> {
  const defs = configSchema['$defs'] as Record<string, { properties?: Record<string, { default?: unknown }> }>;
  const defaults = Object.entries(defs[section]?.properties ?? {}).flatMap(([key, schema]) => (schema.default === undefined ? [] : [[key, schema.default]]));
  return { ...Object.fromEntries(defaults), ...value };
}
