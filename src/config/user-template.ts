// `${user.credentials.NAME}` in a header value: the caller's own credential,
// filled in per request. Load-time interpolation leaves these references (and
// `$${user.` escapes) in header values for this parser; everywhere else they
// are an error, since no other place is evaluated per caller.

/** A piece of a header value: literal text, or the name of one of the caller's credentials. */
export type TemplatePart = string | { readonly credential: string };

/** The prefix every per-user reference starts with; `$${user.` stands for a literal `${user.`. */
export const USER_PREFIX = 'user.';

const USER_REFERENCE = /\$\$\{(?=user\.)|\$\{user\.credentials\.([A-Za-z_][A-Za-z0-9_]*)\}/g;
const WELL_FORMED = /^user\.credentials\.[A-Za-z_][A-Za-z0-9_]*$/;

/** Whether `${ref}` (without `${` and `}`) is a per-user reference of the one supported form. */
export function isUserReference(ref: string): boolean {
  return WELL_FORMED.test(ref);
}

/**
 * A header value as literal text (escapes undone) when it uses no credential,
 * else as parts. Adjacent text is merged; empty text is dropped.
 */
export function parseHeaderValue(text: string): { readonly kind: 'static'; readonly value: string } | { readonly kind: 'template'; readonly parts: readonly TemplatePart[] } {
  const parts: TemplatePart[] = [];
  let last = 0;
  const push = (part: TemplatePart): void => {
    const prev = parts.at(-1);
    if (typeof part === 'string' && typeof prev === 'string') parts[parts.length - 1] = prev + part;
    else if (part !== '') parts.push(part);
  };
  for (const match of text.matchAll(USER_REFERENCE)) {
    push(text.slice(last, match.index));
    push(match[1] === undefined ? '${' : { credential: match[1] });
    last = match.index + match[0].length;
  }
  push(text.slice(last));
  if (parts.every((p) => typeof p === 'string')) return { kind: 'static', value: parts.join('') };
  return { kind: 'template', parts };
}

/** The credential names a template uses, in order of first use. */
export function credentialsOf(parts: readonly TemplatePart[]): string[] {
  return [...new Set(parts.flatMap((p) => (typeof p === 'string' ? [] : [p.credential])))];
}

/** The header value for one caller, or undefined when a credential it uses is not among `values`. */
export function renderTemplate(parts: readonly TemplatePart[], values: Readonly<Record<string, string>>): string | undefined {
  let out = '';
  for (const part of parts) {
    if (typeof part === 'string') out += part;
    else if (Object.hasOwn(values, part.credential)) out += values[part.credential];
    else return undefined;
  }
  return out;
}
