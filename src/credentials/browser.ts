import { Expiring } from '../expiring.ts';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Identity } from '../identity.ts';
import { cookieValue } from './csrf.ts';

/** How long a link in an MCP prompt opens the page; once used it is spent. */
const TICKET_TTL_MS = 5 * 60_000;
/** How long the browser session it opens lasts. */
const SESSION_TTL_MS = 30 * 60_000;
/** Links and sessions held at most; past this the oldest go. */
const MAX_ENTRIES = 10_000;

export const BROWSER_COOKIE = '__Host-berth-session';
export const TICKET_PARAM = 'ticket';

interface Entry {
  readonly identity: Identity;
  readonly server: string;
}

/**
 * A browser cannot send an API key or a bearer token on a page navigation,
 * so the link berth puts in its MCP prompt carries a one-time, short-lived
 * ticket, signed under a secret of this process: opening it starts a browser
 * session for that user (an HttpOnly, SameSite=Strict cookie) that /connect
 * takes as the user's identity, and nothing else does. A sign-in through a
 * jwt provider's issuer (signin.ts) opens the same kind of session.
 */
export class BrowserSessions {
  readonly #secret = randomBytes(32);
  readonly #tickets: Expiring<Entry>;
  readonly #sessions: Expiring<Entry>;

  constructor(now: () => number = Date.now) {
    this.#tickets = new Expiring({ ttlMs: TICKET_TTL_MS, max: MAX_ENTRIES, now });
    this.#sessions = new Expiring({ ttlMs: SESSION_TTL_MS, max: MAX_ENTRIES, now });
  }

  /** A ticket for `identity` to open the page of `server`. */
  ticket(identity: Identity, server: string): string {
    const id = randomBytes(24).toString('base64url');
    this.#tickets.set(id, { identity, server });
    return `${id}.${this.#sign(id)}`;
  }

  /** Spends a ticket for `server`: the session it opens (the cookie's value), or undefined when it is forged, used, expired or for another server. */
  redeem(ticket: string, server: string): string | undefined {
    const [id = '', mac = ''] = ticket.split('.');
    const expected = Buffer.from(this.#sign(id));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    const entry = this.#tickets.take(id);
    if (entry === undefined || entry.server !== server) return undefined;
    return this.open(entry.identity, server);
  }

  /** Opens a browser session for `identity`, come for the page of `server`: the cookie's value (see sessionCookie). */
  open(identity: Identity, server: string): string {
    const session = randomBytes(32).toString('base64url');
    this.#sessions.set(session, { identity, server });
    return session;
  }

  /** The identity of a request's browser session, if it has a live one. */
  identityOf(req: IncomingMessage): Identity | undefined {
    const id = cookieValue(req, BROWSER_COOKIE);
    return id === undefined ? undefined : this.#sessions.get(id)?.identity;
  }

  #sign(id: string): string {
    return createHmac('sha256', this.#secret).update(id).digest('base64url');
  }
}

export function sessionCookie(session: string): string {
  return `${BROWSER_COOKIE}=${session}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`;
}

/** The browser sessions of this process: the links berth gives out and /connect share them. */
export const browserSessions = new BrowserSessions();
