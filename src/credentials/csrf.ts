import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * CSRF protection for the /connect form. The form's token is a random nonce,
 * also held in a cookie, with an HMAC binding it to the user and the server
 * under a secret only berth knows: a page that plants the cookie (any page on
 * another loopback port can, cookies ignore ports) still cannot make a token
 * berth accepts. `__Host-` pins the cookie to this host and path `/` and
 * requires `Secure`, which browsers also honour on http://localhost and
 * http://127.0.0.1.
 */
export const CSRF_COOKIE = '__Host-berth-csrf';
// Form control names have a ':' so they never collide with a field: env and header names cannot hold one.
export const CSRF_FIELD = 'berth:csrf';
export const REMOVE_FIELD = 'berth:remove';
/** `authorize` or `disconnect` a server's OAuth connection. */
export const OAUTH_FIELD = 'berth:oauth';

const NONCE = /^[A-Za-z0-9_-]{43}$/;

/** The nonce the browser already holds, or a new one that must be set with `csrfCookie`. */
export function csrfTokenOf(req: IncomingMessage): { readonly token: string; readonly fresh: boolean } {
  const held = cookieValue(req, CSRF_COOKIE);
  return held !== undefined && NONCE.test(held) ? { token: held, fresh: false } : { token: randomBytes(32).toString('base64url'), fresh: true };
}

export function csrfCookie(nonce: string): string {
  return `${CSRF_COOKIE}=${nonce}; Path=/; Secure; HttpOnly; SameSite=Strict`;
}

/** What the form carries: the nonce and its HMAC over (user, server, nonce). */
export function formToken(secret: Buffer, nonce: string, owner: string, server: string): string {
  return `${nonce}.${createHmac('sha256', secret).update(`${owner}\n${server}\n${nonce}`).digest('base64url')}`;
}

/** True when the form's token is the cookie's nonce, signed for this user and server. */
export function checkCsrf(req: IncomingMessage, submitted: string | null, secret: Buffer, owner: string, server: string): boolean {
  const held = cookieValue(req, CSRF_COOKIE);
  if (held === undefined || submitted === null || !NONCE.test(held)) return false;
  const expected = Buffer.from(formToken(secret, held, owner, server));
  const given = Buffer.from(submitted);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Why a browser request that changes credentials does not come from berth's
 * own pages, or undefined when it does (or is no browser's). Loopback pages on
 * other ports are other origins: the Origin must be berth's exactly (scheme,
 * host and port), and Sec-Fetch-Site, when sent, `same-origin`.
 */
export function foreignOrigin(req: IncomingMessage, publicUrl: string | undefined): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return `Sec-Fetch-Site is ${String(site)}`;
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  const host = req.headers.host ?? '';
  const own = [`http://${host}`, `https://${host}`, ...(publicUrl === undefined ? [] : [new URL(publicUrl).origin])];
  return own.includes(origin.toLowerCase()) ? undefined : `Origin ${origin} is not berth's own`;
}

export function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}
