// Server-side apply field ownership, as the API server keeps it in
// metadata.managedFields: each manager owns a set of leaf paths. Lists are
// atomic here (the real server merges some lists by key); every other rule
// is the real one: conflicts on values owned by another manager (409 unless
// forced, which moves ownership), removal of fields a manager stops applying
// when nobody else owns them, and updates taking the fields they change.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };
/** manager name → operation and owned leaf paths. */
export type Ownership = Map<string, { readonly operation: 'Apply' | 'Update'; readonly paths: Set<string>; readonly subresource?: string }>;

const SEP = '\u0000';
/** Fields the server owns itself, never a manager. */
const SERVER_FIELDS = new Set(['apiVersion', 'kind', 'status', `metadata${SEP}name`, `metadata${SEP}namespace`, `metadata${SEP}uid`, `metadata${SEP}resourceVersion`, `metadata${SEP}generation`, `metadata${SEP}creationTimestamp`, `metadata${SEP}managedFields`]);

export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Leaf paths of an object: maps are walked, lists and scalars are leaves. */
export function leafPaths(value: JsonObject, prefix: string[] = []): string[] {
  return Object.entries(value).flatMap(([key, child]) => {
    const path = [...prefix, key];
    const joined = path.join(SEP);
    if (SERVER_FIELDS.has(joined) || (prefix.length === 0 && key === 'status')) return [];
    return isObject(child) && Object.keys(child).length > 0 ? leafPaths(child, path) : [joined];
  });
}

export function getPath(value: JsonObject, path: string): Json | undefined {
  let node: Json | undefined = value;
  for (const key of path.split(SEP)) node = isObject(node) ? node[key] : undefined;
  return node;
}

export function setPath(value: JsonObject, path: string, leaf: Json): void {
  const keys = path.split(SEP);
  let node = value;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node = isObject(next) ? next : (node[key] = {});
  }
  node[keys.at(-1) ?? ''] = structuredClone(leaf);
}

export function deletePath(value: JsonObject, path: string): void {
  const keys = path.split(SEP);
  const parents: JsonObject[] = [value];
  for (const key of keys.slice(0, -1)) {
    const next = parents.at(-1)?.[key];
    if (!isObject(next)) return;
    parents.push(next);
  }
  delete parents.at(-1)?.[keys.at(-1) ?? ''];
  // Maps emptied by the removal go too, as the real server prunes them.
  for (let i = parents.length - 1; i > 0; i--) {
    if (Object.keys(parents[i] ?? {}).length > 0) break;
    delete parents[i - 1]?.[keys[i - 1] ?? ''];
  }
}

export function sameJson(a: Json | undefined, b: Json | undefined): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: Json | undefined): Json | undefined {
  if (Array.isArray(value)) return value.map((v) => canonical(v) ?? null);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k]) ?? null]));
}

export type ApplyResult = { readonly ok: true; readonly object: JsonObject } | { readonly ok: false; readonly conflicts: readonly { manager: string; path: string }[] };

/** Server-side apply of `applied` by `manager` onto `live` (undefined: create). Mutates `owners`. */
export function applyFields(live: JsonObject | undefined, applied: JsonObject, owners: Ownership, manager: string, force: boolean): ApplyResult {
  const result: JsonObject = live === undefined ? {} : structuredClone(live);
  const paths = leafPaths(applied);
  const conflicts: { manager: string; path: string }[] = [];
  for (const path of paths) {
    if (live !== undefined && sameJson(getPath(live, path), getPath(applied, path))) continue;
    for (const [other, owned] of owners) {
      if (other !== manager && owned.subresource === undefined && owned.paths.has(path)) conflicts.push({ manager: other, path });
    }
  }
  if (conflicts.length > 0 && !force) return { ok: false, conflicts };
  for (const { manager: other, path } of conflicts) owners.get(other)?.paths.delete(path);
  const previous = owners.get(manager)?.paths ?? new Set<string>();
  const now = new Set(paths);
  for (const path of previous) {
    if (now.has(path)) continue;
    const kept = [...owners].some(([other, owned]) => other !== manager && owned.paths.has(path));
    if (!kept) deletePath(result, path);
  }
  for (const path of paths) setPath(result, path, getPath(applied, path) ?? null);
  owners.set(manager, { operation: 'Apply', paths: now });
  pruneEmpty(owners);
  return { ok: true, object: result };
}

/** A non-apply write (PUT, merge patch): the manager takes every field whose value it changed. */
export function updateFields(live: JsonObject, next: JsonObject, owners: Ownership, manager: string): void {
  const changed = new Set([...leafPaths(next), ...leafPaths(live)].filter((p) => !sameJson(getPath(live, p), getPath(next, p))));
  if (changed.size === 0) return;
  for (const owned of owners.values()) for (const p of changed) owned.paths.delete(p);
  const mine = owners.get(manager);
  const paths = new Set([...(mine?.paths ?? []), ...[...changed].filter((p) => getPath(next, p) !== undefined)]);
  owners.set(manager, { operation: 'Update', paths });
  pruneEmpty(owners);
}

function pruneEmpty(owners: Ownership): void {
  for (const [manager, owned] of owners) if (owned.paths.size === 0) owners.delete(manager);
}

/** managedFields in the API's fieldsV1 form: nested `f:<key>` maps. */
export function managedFields(owners: Ownership, apiVersion: string, time: string): Json[] {
  return [...owners].map(([manager, owned]) => {
    const fieldsV1: JsonObject = {};
    for (const path of owned.paths) setPath(fieldsV1, path.split(SEP).map((k) => `f:${k}`).join(SEP), {});
    return { manager, operation: owned.operation, apiVersion, time, fieldsType: 'FieldsV1', fieldsV1, ...(owned.subresource === undefined ? {} : { subresource: owned.subresource }) };
  });
}

export function describePath(path: string): string {
  return `.${path.split(SEP).join('.')}`;
}
