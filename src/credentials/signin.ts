import { Expiring } from '../expiring.ts';
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { missingScopes } from '../auth/access.ts';
import type { BrowserSignIn } from '../auth/provider.ts';
import { audiencesOf, baseUrl } from '../auth/resource.ts';
import { BerthError, isBerthError } from '../errors.ts';
import type { RequestContext } from '../http/context.ts';
import type { Identity } from '../identity.ts';
import type { AuthServerMetadata } from '../oauth/discovery.ts';
import { authServerMetadata } from '../oauth/discovery.ts';
import { requestToken } from '../oauth/grants.ts';
import { authorizationCodeOf, pkcePair, randomValue, requirePkce } from '../oauth/pkce.ts';
import type { FetchPolicy } from '../oauth/ssrf.ts';
import type { BrowserSessions } from './browser.ts';
import { sessionCookie } from './browser.ts';
import { cookieValue } from './csrf.ts';
import { CONNECT_PREFIX } from './missing.ts';
import { escapeHtml, onwardPage, sendPage, simplePage } from './page.ts';

// "Sign in" on /connect through a jwt provider's issuer: authorization code
// with PKCE S256, a single-use state bound to the browser that started it (a
// cookie), a nonce in the ID token. What comes back is checked by that very
// provider, for the route's own audience, so the browser is the user an MCP
// client sending the same token would be; then it gets the browser session
// the one-time link opens.

/** `GET /signin?server=<server>&issuer=<issuer>`: sends the browser to the issuer. */
export const SIGNIN_PATH = '/signin';
/** The redirect URI registered at the issuer: `<publicUrl>/signin/callback`. */
export const SIGNIN_CALLBACK_PATH = '/signin/callback';
/** Binds a sign-in to the browser that started it. Lax, not Strict: it must come back on the issuer's redirect, a cross-site navigation. */
const BINDING_COOKIE = '__Host-berth-signin';
const BINDING = /^[A-Za-z0-9_-]{43}$/;
const PENDING_TTL_MS = 10 * 60_000;
/** An issuer's metadata is read again after this long; a failed read after RETRY_MS. */
const METADATA_TTL_MS = 5 * 60_000;
const RETRY_MS = 5_000;
/** The page's status per refusal; the issuer's own failures (discovery, token endpoint) are 502. */
const STATUS: Readonly<Record<string, number>> = { signin_state_invalid: 400, oauth_denied: 400, oauth_iss_mismatch: 400, signin_token_refused: 403, signin_unavailable: 503 };
const MAX_PENDING = 10_000;

interface Pending {
  readonly binding: string;
  readonly server: string;
  readonly issuer: string;
  readonly clientId: string;
  readonly verifier: string;
  /** Sent when `openid` is asked for; the ID token must carry it back. */
  readonly nonce?: string;
  readonly redirectUri: string;
  /** The route's own resource URL: the token must be for it, as an MCP client's is. */
  readonly resource: string;
  readonly as: AuthServerMetadata;
  readonly policy: FetchPolicy;
}

export interface SignInOptions {
  readonly sessions: BrowserSessions;
  readonly publicUrl?: string;
  /** Whether the config in force has this server: sign-in is for its page only. */
  readonly known: (server: string) => boolean;
  readonly now?: () => number;
}

export function isSignInPath(pathname: string): boolean {
  return pathname === SIGNIN_PATH || pathname === SIGNIN_CALLBACK_PATH;
}

/** A browser opening a page, not a script or an MCP client: only that is offered a sign-in instead of a 401. */
export function wantsPage(req: IncomingMessage): boolean {
  return req.headers['sec-fetch-mode'] === 'navigate' || (req.headers.accept ?? '').includes('text/html');
}

export class SignIn {
  readonly #o: SignInOptions;
  readonly #now: () => number;
  readonly #pending: Expiring<Pending>;
  /** Per issuer: /signin answers anyone, who must not make berth fetch the issuer's metadata per request. */
  readonly #metadata = new Map<string, { expires: number; readonly value: Promise<AuthServerMetadata> }>();

  constructor(options: SignInOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#pending = new Expiring({ ttlMs: PENDING_TTL_MS, max: MAX_PENDING, now: this.#now });
  }

  /** The 401 a browser without a session gets on /connect/<server>: a page with a "sign in" per issuer. */
  offer(res: ServerResponse, server: string, signIns: readonly BrowserSignIn[], headers: Readonly<Record<string, string>>): void {
    const links = signIns.map((s) => `<p><a class="signin" href="${escapeHtml(`${SIGNIN_PATH}?${new URLSearchParams({ server, issuer: s.issuer })}`)}">Sign in with ${escapeHtml(s.issuer)}</a></p>`);
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · berth</title></head><body><h1>Connect ${escapeHtml(server)}</h1><p>Sign in to enter your credentials for ${escapeHtml(server)}, or open the link your MCP client gave you.</p>${links.join('')}</body></html>\n`;
    sendPage(res, 401, html, headers);
  }

  async handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, pathname: string, signIns: readonly BrowserSignIn[]): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendPage(res, 405, simplePage('Method not allowed', 'Use GET.'), { allow: 'GET, HEAD' });
    const params = new URLSearchParams(req.url?.split('?')[1] ?? '');
    try {
      if (pathname === SIGNIN_PATH) return await this.#start(req, res, params, signIns);
      return await this.#finish(req, res, ctx, params, signIns);
    } catch (err) {
      if (!isBerthError(err)) throw err;
      ctx.log.warn({ code: err.code, reason: err.message }, 'browser sign-in refused');
      const status = STATUS[err.code] ?? 502;
      return sendPage(res, status, simplePage('Not signed in', err.message), { 'cache-control': 'no-store' });
    }
  }

  async #start(req: IncomingMessage, res: ServerResponse, params: URLSearchParams, signIns: readonly BrowserSignIn[]): Promise<void> {
    const server = params.get('server') ?? '';
    const issuer = params.get('issuer');
    const signIn = signIns.find((s) => issuer === null || s.issuer === issuer);
    if (server.includes('/') || !this.#o.known(server) || signIn === undefined) {
      return sendPage(res, 404, simplePage('Not found', signIn === undefined ? 'berth offers no sign-in through that issuer.' : `There is no server named ${server}.`));
    }
    const policy: FetchPolicy = { allowPrivateNetworks: signIn.allowPrivateNetworks };
    const as = await this.#metadataOf(signIn.issuer, policy);
    const base = baseUrl(this.#o.publicUrl, req);
    const held = cookieValue(req, BINDING_COOKIE);
    const binding = held !== undefined && BINDING.test(held) ? held : randomValue();
    const { verifier, challenge } = pkcePair();
    const state = randomValue();
    const nonce = signIn.scopes.includes('openid') ? randomValue() : undefined;
    const [resource = base] = audiencesOf(base, { server, path: `/mcp/${server}` });
    const redirectUri = `${base}${SIGNIN_CALLBACK_PATH}`;
    this.#pending.set(state, { binding, server, issuer: signIn.issuer, clientId: signIn.clientId, verifier, ...(nonce === undefined ? {} : { nonce }), redirectUri, resource, as, policy });
    const url = new URL(as.authorization_endpoint);
    const query: Record<string, string> = {
      response_type: 'code',
      client_id: signIn.clientId,
      redirect_uri: redirectUri,
      scope: signIn.scopes.join(' '),
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource,
      ...(nonce === undefined ? {} : { nonce }),
    };
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    res.writeHead(303, { location: url.href, 'set-cookie': `${BINDING_COOKIE}=${binding}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${PENDING_TTL_MS / 1000}`, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }).end();
  }

  async #finish(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, params: URLSearchParams, signIns: readonly BrowserSignIn[]): Promise<void> {
    const state = params.get('state') ?? '';
    // One use only, whatever the outcome.
    const pending = this.#pending.take(state);
    if (pending === undefined) throw stateInvalid('this sign-in is unknown, expired or used already');
    const held = Buffer.from(cookieValue(req, BINDING_COOKIE) ?? '');
    const binding = Buffer.from(pending.binding);
    if (held.length !== binding.length || !timingSafeEqual(held, binding)) throw stateInvalid('this sign-in was started in another browser');
    const signIn = signIns.find((s) => s.issuer === pending.issuer && s.clientId === pending.clientId);
    if (signIn === undefined) throw stateInvalid(`berth no longer offers a sign-in through ${pending.issuer}`);
    const code = authorizationCodeOf(params, pending.as);
    const client = { clientId: signIn.clientId, ...(signIn.clientSecret === undefined ? {} : { clientSecret: signIn.clientSecret }), authMethod: signIn.clientSecret === undefined ? 'none' : 'client_secret_basic' } as const;
    const tokens = await requestToken(pending.as.token_endpoint, { client, issuer: pending.issuer }, { grant_type: 'authorization_code', code, redirect_uri: pending.redirectUri, code_verifier: pending.verifier, resource: pending.resource }, pending.policy);
    if (pending.nonce !== undefined) {
      const problem = tokens.idToken === undefined ? 'the issuer sent no ID token for scope openid' : await signIn.idTokenProblem(tokens.idToken, pending.nonce);
      if (problem !== undefined) throw new BerthError('signin_token_refused', `${problem}; not signed in`);
    }
    const identity = identityOf(await signIn.identify(tokens.accessToken, [pending.resource]), pending.resource);
    const session = this.#o.sessions.open(identity, pending.server);
    ctx.log.info({ user: identity.user, issuer: signIn.issuer, server: pending.server }, 'browser signed in');
    const page = `${CONNECT_PREFIX}${encodeURIComponent(pending.server)}`;
    // A page, not a redirect: a redirect would still be the issuer's cross-site navigation, which carries no SameSite=Strict cookie.
    sendPage(res, 200, onwardPage(`Signed in as ${identity.user}`, page, `Continue to ${pending.server}`, '.'), {
      'set-cookie': [sessionCookie(session), `${BINDING_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`],
      'referrer-policy': 'no-referrer',
    });
  }

  #metadataOf(issuer: string, policy: FetchPolicy): Promise<AuthServerMetadata> {
    const key = `${issuer}\n${policy.allowPrivateNetworks}`;
    const now = this.#now();
    const cached = this.#metadata.get(key);
    if (cached !== undefined && cached.expires > now) return cached.value;
    const value = (async () => {
      const as = await authServerMetadata(issuer, policy);
      if (as === undefined) throw new BerthError('oauth_discovery_failed', `the issuer ${issuer} publishes no metadata (RFC 8414 or OpenID discovery)`);
      requirePkce(as);
      return as;
    })();
    const entry = { expires: now + METADATA_TTL_MS, value };
    value.catch(() => {
      entry.expires = now + RETRY_MS;
    });
    this.#metadata.set(key, entry);
    return value;
  }
}

/** The identity the provider's verdict gives, with the scopes it requires of every token; otherwise why not. */
function identityOf(verdict: Awaited<ReturnType<BrowserSignIn['identify']>>, resource: string): Identity {
  switch (verdict.kind) {
    case 'identity': {
      const missing = missingScopes(verdict.requiredScopes, verdict.identity);
      if (missing.length > 0) throw new BerthError('signin_token_refused', `the token lacks the scopes ${missing.join(' ')}, which this provider requires; not signed in`);
      return verdict.identity;
    }
    case 'invalid':
      throw new BerthError('signin_token_refused', `${verdict.reason} (berth asked for one for ${resource}); not signed in`);
    case 'unavailable':
      throw new BerthError('signin_unavailable', `${verdict.reason}; try again`);
    case 'pass':
      throw new BerthError('signin_token_refused', 'the token is not one this provider takes; not signed in');
  }
}

function stateInvalid(why: string): BerthError {
  return new BerthError('signin_state_invalid', `${why}; open the server's /connect page and sign in again`);
}
