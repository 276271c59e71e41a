// The headers a caller's requests carry to a route whose config uses
// `${user.credentials.NAME}` (or `fromUser` headers): rendered from the
// caller's own saved credentials, per request. Values are cached per user and
// server until the store says they changed, so a request decrypts nothing.
import { renderTemplate } from '../../config/user-template.ts';
import { headerFieldsOf } from '../../credentials/fields.ts';
import type { Route } from '../../desired/types.ts';
import type { CredentialListener } from '../../store/credentials.ts';
import { ProxyError } from '../../http/proxy-error.ts';

/** A route that may carry per-user headers. */
export type HeaderRoute = Route & { kind: 'hosted' | 'remote' };

/** What the resolver needs of the credential store. */
export interface CredentialSource {
  get(user: string, server: string): Promise<Readonly<Record<string, string>>>;
  onChange(listener: CredentialListener): () => void;
}

/** Turns a route's per-user headers into one caller's header values. */
export interface UserHeaderSource {
  /**
   * The caller's headers for the route: its fixed headers plus the ones made
   * from the caller's credentials. Fails with `credentials_missing` (naming
   * every required value not saved) before anything is sent upstream.
   */
  headersFor(route: HeaderRoute, user: string): Promise<Readonly<Record<string, string>>>;
}

/** Printable header text: a value with a line break or NUL would split or corrupt the request. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export class UserHeaderResolver implements UserHeaderSource {
  readonly #store: CredentialSource;
  readonly #cache = new Map<string, Promise<Readonly<Record<string, string>>>>();
  readonly #stop: () => void;

  constructor(store: CredentialSource) {
    this.#store = store;
    this.#stop = store.onChange((change) => this.#cache.delete(keyOf(change.user, change.server)));
  }

  async headersFor(route: HeaderRoute, user: string): Promise<Readonly<Record<string, string>>> {
    const values = await this.#values(user, route.server);
    const fields = headerFieldsOf(route);
    const missing = fields.filter((f) => f.required && !Object.hasOwn(values, f.name)).map((f) => f.name);
    const headers: Record<string, string> = { ...route.headers.values };
    for (const [name, parts] of Object.entries(route.userHeaders ?? {})) {
      const value = renderTemplate(parts, values);
      // An optional credential the user left empty: the header is left out, never sent half-filled.
      if (value === undefined) continue;
      if (!HEADER_VALUE.test(value)) {
        // Asking again beats sending a broken request; which value is wrong, the user knows from the names.
        for (const part of parts) if (typeof part !== 'string' && !missing.includes(part.credential)) missing.push(part.credential);
        continue;
      }
      headers[name] = value;
    }
    if (missing.length > 0) {
      throw new ProxyError('credentials_missing', `server ${route.server} needs credentials you have not supplied: ${missing.join(', ')}`, { missing: { server: route.server, names: missing } });
    }
    return headers;
  }

  close(): void {
    this.#stop();
    this.#cache.clear();
  }

  #values(user: string, server: string): Promise<Readonly<Record<string, string>>> {
    const key = keyOf(user, server);
    let pending = this.#cache.get(key);
    if (pending === undefined) {
      pending = this.#store.get(user, server);
      this.#cache.set(key, pending);
      // A failed read (a state key gone) is not remembered: the next request tries again.
      pending.catch(() => this.#cache.delete(key));
    }
    return pending;
  }
}

/** Whether a route sends any header made from its callers' credentials. */
export function hasUserHeaders(route: Route): route is HeaderRoute {
  return route.kind !== 'composite' && route.userHeaders !== undefined;
}

/**
 * Whether a route's headers need a value each user must supply: then its
 * server may well refuse a connection without one (berth's own, which
 * carries only the fixed headers).
 */
export function needsUserCredentials(route: Route): boolean {
  if (!hasUserHeaders(route)) return false;
  const required = new Set(headerFieldsOf(route).filter((c) => c.required).map((c) => c.name));
  return Object.values(route.userHeaders ?? {}).some((parts) => parts.some((part) => typeof part !== 'string' && required.has(part.credential)));
}

function keyOf(user: string, server: string): string {
  return `${server}\n${user}`;
}
