// Checks Kubernetes objects against the official API models: the JSON schemas
// of `kubernetes-models` (types, required fields, enums) plus every field name
// against @kubernetes/client-node's generated models, which the JSON schemas
// leave open; and the name and label rules the API server enforces itself.
import * as client from '@kubernetes/client-node';

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;
interface AttributeType {
  readonly name: string;
  readonly baseName: string;
  readonly type: string;
}
type Described = { getAttributeTypeMap(): AttributeType[] };

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** Kinds whose names the API server checks as DNS-1035 labels rather than subdomains. */
const LABEL_NAMED = new Set(['Service', 'Namespace']);

/** Every problem with one object; empty when the API server would accept it. */
export async function checkKubeObject(object: { apiVersion: string; kind: string; metadata?: { name?: string; labels?: Record<string, string> } }): Promise<string[]> {
  const where = `${object.kind}/${object.metadata?.name ?? '?'}`;
  const problems: string[] = [];
  const models = (await import(`kubernetes-models/${object.apiVersion}`)) as Record<string, ModelClass | undefined>;
  const Model = models[object.kind];
  if (Model === undefined) return [`${where}: no model for ${object.apiVersion} ${object.kind}`];
  try {
    new Model(object).validate();
  } catch (err) {
    problems.push(`${where}: ${(err as Error).message}`);
  }
  const version = object.apiVersion.split('/').at(-1) ?? '';
  const typeName = `${version.charAt(0).toUpperCase()}${version.slice(1)}${object.kind}`;
  problems.push(...unknownFields(object, typeName, where));
  const name = object.metadata?.name ?? '';
  const nameRule = LABEL_NAMED.has(object.kind) ? DNS_LABEL : DNS_SUBDOMAIN;
  if (!nameRule.test(name) || name.length > (LABEL_NAMED.has(object.kind) ? 63 : 253)) problems.push(`${where}: invalid name`);
  for (const [key, value] of Object.entries(object.metadata?.labels ?? {})) {
    if (value.length > 63 || !LABEL_VALUE.test(value)) problems.push(`${where}: label ${key}=${value} is not a valid label value`);
  }
  return problems;
}

function unknownFields(value: unknown, type: string, at: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array?.[1] !== undefined) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1] ?? '', `${at}[${i}]`)) : [`${at}: must be a list`];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map?.[1] !== undefined) return Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1] ?? '', `${at}.${k}`));
  const model = (client as unknown as Record<string, Described | undefined>)[type];
  if (model === undefined || typeof model.getAttributeTypeMap !== 'function') return [];
  if (typeof value !== 'object') return [`${at}: must be an object`];
  const attributes = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([key, child]) => {
    const childType = attributes.get(key);
    return childType === undefined ? [`${at}.${key}: unknown field of ${type}`] : unknownFields(child, childType, `${at}.${key}`);
  });
}
