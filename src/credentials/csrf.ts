import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Double-submit CSRF protection for the /connect form: a random token in a
 * cookie and the same token in the form. `__Host-` pins the cookie to this
 * host and path `/` (no subdomain can plant one) and requires `Secure`, which
 * browsers also honour on http://localhost and http://127.0.0.1.
 */
export const CSRF_COOKIE = '__Host-berth-csrf';
// Form control names have a ':' so they never collide with a field: env and header names cannot hold one.
export const CSRF_FIELD = 'berth:csrf';
export const REMOVE_FIELD = 'berth:remove';
/** `authorize` or `disconnect` a server's OAuth connection. */
export const OAUTH_FIELD = 'berth:oauth';

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** The token the browser already holds, or a new one that must be set with `csrfCookie`. */
export function csrfTokenOf(req: IncomingMessage): { readonly token: string; readonly fresh: boolean } {
  const held = cookieValue(req, CSRF_COOKIE);
  return held !== undefined && TOKEN.test(held) ? { token: held, fresh: false } : { token: randomBytes(32).toString('base64url'), fresh: true };
}

export function csrfCookie(token: string): string {
  return `${CSRF_COOKIE}=${token}; Path=/; Secure; HttpOnly; SameSite=Strict`;
}

/** True when the form carries the same well-formed token as the cookie. */
export function checkCsrf(req: IncomingMessage, submitted: string | null): boolean {
  const held = cookieValue(req, CSRF_COOKIE);
  if (held === undefined || submitted === null || !TOKEN.test(held) || !TOKEN.test(submitted)) return false;
  return timingSafeEqual(Buffer.from(held), Buffer.from(submitted));
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}
