import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { UserCredential } from '../desired/types.ts';
import { isBerthError } from '../errors.ts';
import type { Identity } from '../identity.ts';
import type { RequestContext } from '../http/context.ts';
import { isJsonContentType, readJsonBody, writeJson } from '../http/json-io.ts';
import type { CredentialInput, CredentialStore } from '../store/credentials.ts';
import { putEntry } from '../store/state.ts';
import { baseUrl } from '../auth/resource.ts';
import type { Authorizer, OAuthTarget } from '../oauth/authorizer.ts';
import { CALLBACK_PATH } from '../oauth/authorizer.ts';
import { ownerOf } from '../oauth/owner.ts';
import { CSRF_FIELD, OAUTH_FIELD, REMOVE_FIELD, checkCsrf, csrfCookie, csrfTokenOf, foreignOrigin, formToken } from './csrf.ts';
import type { AuthorizationView, ClientSnippet } from './page.ts';
import { onwardPage, renderConnectPage, sendPage, simplePage } from './page.ts';
import { CONNECT_PREFIX, connectUrlOf } from './missing.ts';
import { browserSessions } from './browser.ts';
import { SignIn, wantsPage } from './signin.ts';
import type { BrowserSignIn } from '../auth/provider.ts';

export const API_PATH = '/api/credentials';
/** `GET /api/oauth/<server>`: where the caller's authorization for a server stands (`berth oauth status`). */
export const OAUTH_API_PREFIX = '/api/oauth/';

/** Form posts and JSON bodies are a few values; anything larger is not a credential form. */
const BODY_LIMIT = 64 * 1024;
/** Longest single value: room for a JWT or a PEM key, not for a file dump. */
const VALUE_LIMIT = 16 * 1024;

export interface CredentialRoutesOptions {
  readonly store: CredentialStore;
  /** The `fromUser` fields of a server in the config in force; undefined for an unknown server. */
  readonly fields: (server: string) => readonly UserCredential[] | undefined;
  /** Whether the caller may use a server the config has (its `access`): nobody else sees its page or stores values for it. */
  readonly mayUse?: (server: string, identity: Identity) => boolean;
  /** listen.publicUrl: its origin is berth's own too. */
  readonly publicUrl?: string;
  /** Upstream OAuth: "authorize" and "disconnect" on the page, and the callback. */
  readonly oauth?: OAuthPages;
  /** What to paste into each MCP client to reach a server (`connectSnippets` of src/clients/connect.ts), shown on its page. */
  readonly snippets?: (server: string) => readonly ClientSnippet[];
}

export interface OAuthPages {
  readonly authorizer: Authorizer;
  /** A server's OAuth target in the config in force; undefined for a server that cannot take a token from berth. */
  target(server: string): OAuthTarget | undefined;
  /** Whether the caller manages shared (`perUser: false`) tokens: a member of the admin group. */
  mayManageShared(identity: Identity): boolean;
  /** listen.publicUrl: the base of the callback berth registers. */
  readonly publicUrl?: string;
}

/** How users supply credentials: the /connect page for people, /api/credentials for scripts. */
export interface CredentialRoutes {
  handle(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, pathname: string): Promise<void>;
  /**
   * A browser without a credential or session opening /connect/<server>:
   * answers a page offering the jwt issuers' sign-ins and returns true, or
   * returns false (no sign-in configured, or not a page request) and leaves
   * the 401 to the gate. `headers` are the gate's challenge.
   */
  offerSignIn(req: IncomingMessage, res: ServerResponse, pathname: string, signIns: readonly BrowserSignIn[], headers: Readonly<Record<string, string>>): boolean;
  /** `/signin` and its callback (isSignInPath), before any identity. */
  signIn(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, pathname: string, signIns: readonly BrowserSignIn[]): Promise<void>;
}

export function isCredentialPath(pathname: string): boolean {
  return pathname.startsWith(CONNECT_PREFIX) || pathname === API_PATH || pathname.startsWith(`${API_PATH}/`) || pathname === CALLBACK_PATH || pathname.startsWith(OAUTH_API_PREFIX);
}

type Answer = { readonly status: number; readonly body: unknown; readonly headers?: Readonly<Record<string, string>> };

/** Every operation is on the caller's own credentials (`ctx.user`); nobody reaches another user's. */
export function createCredentialRoutes(options: CredentialRoutesOptions): CredentialRoutes {
  const { store, fields } = options;
  // Signs the form tokens; a restart makes open forms expire, which they say.
  const secret = randomBytes(32);
  const signIn = new SignIn({ sessions: browserSessions, known: (server) => fields(server) !== undefined, ...(options.publicUrl === undefined ? {} : { publicUrl: options.publicUrl }) });
  // The same answer as /mcp/<server> gives: a known server is refused by name, an unknown one is 404.
  const refused = (server: string, ctx: RequestContext): string | undefined => {
    if (fields(server) === undefined || options.mayUse === undefined || options.mayUse(server, ctx.identity)) return undefined;
    ctx.log.info({ server, user: ctx.user }, 'credentials refused: the server\'s access does not admit the user');
    return `user ${ctx.identity.user} may not use server ${server}`;
  };

  async function connect(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, server: string): Promise<void> {
    const declared = fields(server);
    const forbidden = refused(server, ctx);
    if (forbidden !== undefined) return sendPage(res, 403, simplePage('Forbidden', `${forbidden}.`));
    const target = declared === undefined ? undefined : options.oauth?.target(server);
    const authorizer = target !== undefined && options.oauth?.authorizer.applies(target) === true ? options.oauth.authorizer : undefined;
    if (declared === undefined || (declared.length === 0 && authorizer === undefined)) {
      return sendPage(res, 404, simplePage('Not found', declared === undefined ? `There is no server named ${server}.` : `Server ${server} needs no credentials from you.`));
    }
    const { token, fresh } = csrfTokenOf(req);
    const cookie: Record<string, string> = fresh ? { 'set-cookie': csrfCookie(token) } : {};
    const shared = target?.oauth?.perUser === false;
    const mayManage = !shared || options.oauth?.mayManageShared(ctx.identity) === true;
    const render = async (status: number, notice?: { kind: 'ok' | 'error'; text: string }): Promise<void> => {
      const saved = new Set(store.list(ctx.user)[server] ?? []);
      const authorization = authorizer === undefined || target === undefined ? undefined : await authorizationView(authorizer, ownerOf(ctx.identity), target, shared, mayManage);
      const snippets = options.snippets?.(server) ?? [];
      sendPage(res, status, renderConnectPage({ server, user: ctx.identity.user, fields: declared, saved, csrf: formToken(secret, token, ctx.user, server), snippets, ...(notice === undefined ? {} : { notice }), ...(authorization === undefined ? {} : { authorization }) }), cookie);
    };
    if (req.method === 'GET' || req.method === 'HEAD') {
      const done = new URLSearchParams(req.url?.split('?')[1] ?? '').get('done');
      return render(200, done === null ? undefined : NOTICES[done]);
    }
    if (req.method !== 'POST') return sendPage(res, 405, simplePage('Method not allowed', 'Use GET or POST.'), { allow: 'GET, HEAD, POST' });
    if (req.headers['content-type']?.split(';')[0]?.trim().toLowerCase() !== 'application/x-www-form-urlencoded') {
      return sendPage(res, 415, simplePage('Unsupported form', 'Submit the form on this page.'));
    }
    const form = await readForm(req);
    if (form === undefined) return sendPage(res, 413, simplePage('Too large', `The form is over ${BODY_LIMIT} bytes.`), { connection: 'close' });
    const foreign = foreignOrigin(req, options.publicUrl);
    if (foreign !== undefined || !checkCsrf(req, form.get(CSRF_FIELD), secret, ctx.user, server)) {
      ctx.log.warn({ server, user: ctx.user, reason: foreign ?? 'token missing or wrong' }, 'credentials form refused: not from berth\'s own page');
      return sendPage(res, 403, simplePage('Forbidden', 'The form expired or came from another site. Reload the page and submit it again.'), cookie);
    }
    try {
      const action = form.get(OAUTH_FIELD);
      if (action !== null && authorizer !== undefined && target !== undefined) {
        if (!mayManage) return render(403, { kind: 'error', text: 'Only a member of the admin group can change the shared connection.' });
        if (action === 'disconnect') {
          await authorizer.disconnect(ownerOf(ctx.identity), target);
          return redirect(res, server, 'disconnected');
        }
        const location = await authorizer.begin(ownerOf(ctx.identity), target, baseUrl(options.oauth?.publicUrl, req));
        // Not a redirect: the page's `form-action 'self'` would stop a browser following one to another origin.
        return sendPage(res, 200, onwardPage(`Authorize ${server}`, location, `Continue to ${new URL(location).origin}`, ` to sign in and allow berth to use ${server} for you.`));
      }
      const remove = form.get(REMOVE_FIELD);
      if (remove !== null) {
        if (declared.some((f) => f.name === remove)) await store.delete(ctx.user, server, remove);
        return redirect(res, server, 'removed');
      }
      const values = inputsOf(declared, (name) => form.get(name) ?? '');
      if (typeof values === 'string') return render(400, { kind: 'error', text: values });
      const missing = missingOf(declared, new Set([...(store.list(ctx.user)[server] ?? []), ...Object.keys(values)]));
      if (missing.length > 0) return render(400, { kind: 'error', text: `Still required: ${missing.join(', ')}.` });
      await store.set(ctx.user, server, values);
      return redirect(res, server, 'saved');
    } catch (err) {
      if (!isBerthError(err)) throw err;
      ctx.log.warn({ server, user: ctx.user, code: err.code }, 'connect action failed');
      return render(err.code.startsWith('oauth_') ? 502 : 500, { kind: 'error', text: err.message });
    }
  }

  /** Where the caller's authorization for a server stands; nothing secret, only states, scopes and the issuer. */
  async function oauthStatus(req: IncomingMessage, ctx: RequestContext, server: string): Promise<Answer> {
    if (req.method !== 'GET') return refuse(405, 'method_not_allowed', 'use GET', { allow: 'GET' });
    if (fields(server) === undefined || server.includes('/')) return refuse(404, 'not_found', `no server named ${server}`);
    const forbidden = refused(server, ctx);
    if (forbidden !== undefined) return refuse(403, 'forbidden', forbidden);
    const target = options.oauth?.target(server);
    const connect = connectUrlOf(baseUrl(options.oauth?.publicUrl, req), server);
    if (target === undefined || options.oauth === undefined) return { status: 200, body: { server, user: ctx.identity.user, mode: 'none', connected: false, connect } };
    return { status: 200, body: { server, user: ctx.identity.user, ...(await options.oauth.authorizer.status(ownerOf(ctx.identity), target)), connect } };
  }

  /** The authorization server sent the user back: the token is obtained for the user who started, or nothing is. */
  async function callback(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const authorizer = options.oauth?.authorizer;
    if (authorizer === undefined) return sendPage(res, 404, simplePage('Not found', 'This berth obtains no OAuth tokens.'));
    if (req.method !== 'GET') return sendPage(res, 405, simplePage('Method not allowed', 'Use GET.'), { allow: 'GET' });
    try {
      const { server } = await authorizer.complete(ownerOf(ctx.identity), new URLSearchParams(req.url?.split('?')[1] ?? ''));
      return redirect(res, server, 'connected');
    } catch (err) {
      if (!isBerthError(err)) throw err;
      ctx.log.warn({ user: ctx.user, code: err.code }, 'OAuth callback refused');
      return sendPage(res, err.code === 'oauth_token_failed' ? 502 : 400, simplePage('Not connected', err.message));
    }
  }

  async function api(req: IncomingMessage, ctx: RequestContext, rest: string): Promise<Answer> {
    const [server, name, ...more] = rest === '' ? [] : rest.split('/');
    if (server === undefined) {
      if (req.method !== 'GET') return refuse(405, 'method_not_allowed', 'use GET to list your credentials', { allow: 'GET' });
      return { status: 200, body: { user: ctx.identity.user, servers: store.list(ctx.user) } };
    }
    const declared = fields(server);
    if (declared === undefined || more.length > 0) return refuse(404, 'not_found', `no server named ${server}`);
    // Deleting stays open: a user whose access was taken away can still remove what they stored.
    const forbidden = req.method === 'DELETE' ? undefined : refused(server, ctx);
    if (forbidden !== undefined) return refuse(403, 'forbidden', `${forbidden}; ask an operator to add you to its \`access\``);
    const saved = (): readonly string[] => store.list(ctx.user)[server] ?? [];
    const summary = (): Answer => ({ status: 200, body: { server, saved: saved(), missing: missingOf(declared, new Set(saved())) } });
    if (name !== undefined) {
      if (req.method !== 'DELETE') return refuse(405, 'method_not_allowed', 'a single credential can only be deleted', { allow: 'DELETE' });
      return (await store.delete(ctx.user, server, name)) ? { status: 204, body: undefined } : refuse(404, 'not_found', `you have no saved ${name} for ${server}`);
    }
    switch (req.method) {
      case 'GET':
        return summary();
      case 'DELETE':
        return (await store.delete(ctx.user, server)) ? { status: 204, body: undefined } : refuse(404, 'not_found', `you have no saved credentials for ${server}`);
      case 'PUT': {
        if (!isJsonContentType(req.headers['content-type'])) return refuse(415, 'unsupported_media_type', 'send a JSON object: {"NAME": "value"}');
        const body = await readJsonBody(req, BODY_LIMIT);
        if (!body.ok) return refuse(body.status, 'invalid_body', body.message);
        const object = body.value;
        if (object === null || typeof object !== 'object' || Array.isArray(object)) return refuse(400, 'invalid_body', 'send a JSON object: {"NAME": "value"}');
        const given = object as Record<string, unknown>;
        const unknown = Object.keys(given).filter((k) => !declared.some((f) => f.name === k));
        if (unknown.length > 0) return refuse(400, 'unknown_credential', `${server} takes no ${unknown.join(', ')}; it takes: ${declared.map((f) => f.name).join(', ') || 'nothing'}`);
        const values = inputsOf(declared, (n) => (Object.hasOwn(given, n) ? given[n] : ''));
        if (typeof values === 'string') return refuse(400, 'invalid_value', values);
        if (Object.keys(values).length === 0) return refuse(400, 'invalid_body', `give at least one of: ${declared.map((f) => f.name).join(', ')}`);
        try {
          await store.set(ctx.user, server, values);
        } catch (err) {
          if (!isBerthError(err)) throw err;
          return refuse(500, err.code, err.message);
        }
        return summary();
      }
      default:
        return refuse(405, 'method_not_allowed', 'use GET, PUT or DELETE', { allow: 'GET, PUT, DELETE' });
    }
  }

  return {
    offerSignIn(req, res, pathname, signIns, headers) {
      const server = pathname.slice(CONNECT_PREFIX.length);
      if (signIns.length === 0 || !wantsPage(req) || server === '' || server.includes('/')) return false;
      signIn.offer(res, server, signIns, headers);
      return true;
    },
    signIn: (req, res, ctx, pathname, signIns) => signIn.handle(req, res, ctx, pathname, signIns),
    async handle(req, res, ctx, pathname) {
      if (pathname === CALLBACK_PATH) return callback(req, res, ctx);
      if (pathname.startsWith(OAUTH_API_PREFIX)) {
        const answer = await oauthStatus(req, ctx, pathname.slice(OAUTH_API_PREFIX.length));
        return writeJson(res, answer.status, answer.body, { 'cache-control': 'no-store', ...answer.headers }, 2);
      }
      if (pathname.startsWith(CONNECT_PREFIX)) {
        const server = pathname.slice(CONNECT_PREFIX.length);
        if (server === '' || server.includes('/')) return sendPage(res, 404, simplePage('Not found', 'Credentials are supplied at /connect/<server>.'));
        return connect(req, res, ctx, server);
      }
      const foreign = req.method === 'GET' || req.method === 'HEAD' ? undefined : foreignOrigin(req, options.publicUrl);
      const answer = foreign === undefined ? await api(req, ctx, pathname.slice(API_PATH.length + 1)) : refuse(403, 'foreign_origin', `credentials change only from berth's own pages or from scripts: ${foreign}`);
      if (answer.body === undefined) {
        res.writeHead(answer.status, { 'cache-control': 'no-store', ...answer.headers });
        res.end();
        return;
      }
      writeJson(res, answer.status, answer.body, { 'cache-control': 'no-store', ...answer.headers }, 2);
    },
  };
}

/**
 * The non-empty values among the declared fields, or what is wrong with one.
 * An empty value means "keep what is saved".
 */
function inputsOf(declared: readonly UserCredential[], valueOf: (name: string) => unknown): Record<string, CredentialInput> | string {
  const values: Record<string, CredentialInput> = {};
  for (const field of declared) {
    const value = valueOf(field.name);
    if (typeof value !== 'string') return `${field.name} must be a string`;
    if (value === '') continue;
    if (value.length > VALUE_LIMIT) return `${field.name} is longer than ${VALUE_LIMIT} characters`;
    // A name may be declared twice (an env variable and a header): any header use counts.
    const unfit = declared.some((f) => f.name === field.name && f.header === true) ? unfitForHeader(value) : undefined;
    if (unfit !== undefined) return `${field.name} contains ${unfit}; it is sent as an HTTP header, which carries only printable ASCII`;
    putEntry(values, field.name, { value, sensitive: field.sensitive });
  }
  return values;
}

/** The first character an HTTP header value cannot carry, described, or undefined. */
function unfitForHeader(value: string): string | undefined {
  const at = value.search(/[^\t\x20-\x7e]/);
  if (at < 0) return undefined;
  const code = value.codePointAt(at) ?? 0;
  const name = code === 0x0a ? 'a line feed' : code === 0x0d ? 'a carriage return' : code < 0x20 || code === 0x7f ? 'a control character' : 'a non-ASCII character';
  return `${name} (U+${code.toString(16).toUpperCase().padStart(4, '0')}) at position ${at + 1}`;
}

function missingOf(declared: readonly UserCredential[], have: ReadonlySet<string>): string[] {
  return declared.filter((f) => f.required && !have.has(f.name)).map((f) => f.name);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  if (Number(req.headers['content-length'] ?? 0) > BODY_LIMIT) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks, size).toString('utf8'));
}

function refuse(status: number, code: string, message: string, headers?: Readonly<Record<string, string>>): Answer {
  return { status, body: { error: { code, message } }, ...(headers === undefined ? {} : { headers }) };
}

const NOTICES: Readonly<Record<string, { readonly kind: 'ok'; readonly text: string }>> = {
  saved: { kind: 'ok', text: 'Saved.' },
  removed: { kind: 'ok', text: 'Removed.' },
  connected: { kind: 'ok', text: 'Connected.' },
  disconnected: { kind: 'ok', text: 'Disconnected.' },
};

async function authorizationView(authorizer: Authorizer, user: string, target: OAuthTarget, shared: boolean, mayManage: boolean): Promise<AuthorizationView> {
  const status = await authorizer.status(user, target);
  const detail = [...(status.scope === undefined ? [] : [`scopes ${status.scope}`]), ...(status.issuer === undefined ? [] : [`at ${status.issuer}`])].join(', ');
  return { connected: status.connected, ...(detail === '' ? {} : { detail }), shared, mayManage };
}

/** Post/redirect/get: a reload never re-submits the form. */
function redirect(res: ServerResponse, server: string, done: 'saved' | 'removed' | 'connected' | 'disconnected'): void {
  res.writeHead(303, { location: `${CONNECT_PREFIX}${encodeURIComponent(server)}?done=${done}`, 'cache-control': 'no-store' });
  res.end();
}

