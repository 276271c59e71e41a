import { Expiring } from '../expiring.ts';
import type { OAuthSettings, Route } from '../desired/types.ts';
import { BerthError } from '../errors.ts';
import { ProxyError } from '../http/proxy-error.ts';
import type { Logger } from '../observe/log.ts';
import type { AuthServerMetadata, Challenge, Discovery } from './discovery.ts';
import { discover } from './discovery.ts';
import { GrantError, registerClient, registrationKnown, requestToken, revokeToken } from './grants.ts';
import type { ClientAuth, TokenResponse } from './grants.ts';
import { SHARED_OWNER } from './owner.ts';
import { authorizationCodeOf, pkcePair, randomValue, requirePkce } from './pkce.ts';
import type { FetchPolicy } from './ssrf.ts';
import type { ClientIdentity, OAuthStore, TokenSet } from './token-store.ts';

/**
 * A server berth may be an OAuth client towards, and its `oauth` settings:
 * a remote, by its URL; a hosted server, by the address of the instance that
 * last challenged berth (instances come and go; the resource is the one its
 * metadata advertises).
 */
export interface OAuthTarget {
  readonly server: string;
  /** A remote's URL; a hosted instance's when berth is told of its challenge; undefined for a hosted server otherwise. */
  readonly url?: string;
  readonly hosted?: boolean;
  readonly oauth?: OAuthSettings;
}

/** The OAuth target of a route: a remote or a hosted server. */
export function oauthTargetOf(route: Route | undefined): OAuthTarget | undefined {
  if (route === undefined || route.kind === 'composite') return undefined;
  const oauth = route.oauth === undefined ? {} : { oauth: route.oauth };
  return route.kind === 'remote' ? { server: route.server, url: route.url, ...oauth } : { server: route.server, hosted: true, ...oauth };
}

export interface AuthorizerOptions {
  readonly store: OAuthStore;
  readonly logger: Logger;
  /** `<publicUrl>/oauth/client-metadata.json` is berth's Client ID Metadata Document when publicUrl is https. */
  readonly publicUrl?: string;
  readonly now?: () => number;
}

export const CALLBACK_PATH = '/oauth/callback';
export const CLIENT_METADATA_PATH = '/oauth/client-metadata.json';

/** An authorization berth sent a user to and has not seen come back. */
interface Pending {
  /** Who started it: only they may finish it. */
  readonly user: string;
  /** Whose token it makes: the user's, or everyone's (`perUser: false`). */
  readonly owner: string;
  readonly server: string;
  readonly verifier: string;
  readonly redirectUri: string;
  readonly discovery: Discovery;
  readonly auth: ClientAuth;
  readonly policy: FetchPolicy;
}

const PENDING_TTL_MS = 10 * 60_000;
const MAX_PENDING = 10_000;
/** Refresh this long before expiry at most (a quarter of the lifetime for short-lived tokens). */
const REFRESH_SKEW_MS = 60_000;

export type OAuthListener = (owner: string, server: string) => void;

/** What the caller's token state is for a server, for pages and `berth oauth status`. */
export interface AuthorizationStatus {
  /** Why berth is this server's OAuth client: its `oauth` block, an upstream's 401 challenge, or not at all. */
  readonly mode: 'configured' | 'challenged' | 'none';
  /** The last discovery since berth started: the issuer it found, or why it failed. */
  readonly discovery?: { readonly issuer?: string; readonly error?: { readonly code: string; readonly message: string } };
  readonly connected: boolean;
  readonly expiresAt?: number;
  readonly scope?: string;
  readonly issuer?: string;
  readonly refreshable?: boolean;
}

/**
 * berth as each user's OAuth client: starts authorizations, finishes them at
 * the callback, hands out a valid access token per (owner, server) and
 * refreshes it once for any number of concurrent callers.
 */
export class Authorizer {
  readonly #o: AuthorizerOptions;
  readonly #now: () => number;
  readonly #pending: Expiring<Pending>;
  /** Decrypted token sets, so a request decrypts nothing; null = known absent. */
  readonly #cache = new Map<string, TokenSet | null>();
  /** One refresh per (owner, server) at a time. */
  readonly #refreshing = new Map<string, Promise<TokenSet>>();
  /** One registration per (server, issuer) at a time. */
  readonly #registering = new Map<string, Promise<ClientIdentity>>();
  /** The newest Bearer challenge an upstream sent, per server: its scope and metadata URL drive the next authorization. */
  readonly #challenges = new Map<string, Challenge & { readonly url?: string }>();
  readonly #listeners = new Set<OAuthListener>();
  /** The last discovery per server: the issuer found, or why it failed. Codes and issuers only, never a secret. */
  readonly #discovered = new Map<string, { readonly issuer?: string; readonly error?: { readonly code: string; readonly message: string } }>();

  constructor(options: AuthorizerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#pending = new Expiring({ ttlMs: PENDING_TTL_MS, max: MAX_PENDING, now: this.#now });
  }

  /** Whether a server takes OAuth tokens from berth: it has an `oauth` block, or has sent a Bearer challenge. */
  applies(target: OAuthTarget): boolean {
    return target.oauth !== undefined || this.#challenges.has(target.server);
  }

  /**
   * The owner's access token for the server, refreshed when near expiry;
   * undefined when the server does not (yet) ask for one. Throws
   * `authorization_required` when the user must authorize (again).
   */
  async tokenFor(user: string, target: OAuthTarget): Promise<string | undefined> {
    const owner = ownerFor(user, target);
    const set = await this.#tokenSet(owner, target.server);
    if (set === undefined) {
      if (!this.applies(target)) return undefined;
      throw authorizationRequired(target.server, `server ${target.server} needs your authorization`);
    }
    if (set.refreshAt === undefined || this.#now() < set.refreshAt) return set.accessToken;
    return (await this.#refresh(owner, target, set)).accessToken;
  }

  /**
   * The upstream answered 401 with a Bearer challenge. Remembered for the
   * next authorization; a token that was sent is spent: the next call
   * refreshes it, or asks the user again. A token refused on the one retry
   * after a refresh (`retried`) is not refreshed again: the user authorizes.
   */
  async challenged(user: string, target: OAuthTarget, challenge: Challenge, sent: string | undefined, retried = false): Promise<void> {
    const owner = ownerFor(user, target);
    this.#challenges.set(target.server, { ...challenge, ...(target.url === undefined ? {} : { url: target.url }) });
    if (sent === undefined) return;
    const set = await this.#tokenSet(owner, target.server);
    if (set?.accessToken !== sent) return;
    if (set.refreshToken === undefined || retried) await this.#forget(owner, target.server);
    else this.#cache.set(keyOf(owner, target.server), { ...set, refreshAt: 0 });
  }

  /** Starts an authorization: discovery, the client identity, PKCE and state; returns the URL to send the user to. */
  async begin(user: string, target: OAuthTarget, baseUrl: string): Promise<string> {
    const settings = target.oauth;
    const policy: FetchPolicy = { allowPrivateNetworks: settings?.allowPrivateNetworks ?? false };
    const challenge = this.#challenges.get(target.server);
    let discovery: Discovery;
    try {
      const url = target.url ?? challenge?.url;
      if (url === undefined) throw new BerthError('oauth_discovery_failed', `server ${target.server} has not asked for a token yet; use it once from your MCP client, then authorize`);
      discovery = await discover(url, challenge, settings?.authorizationServer, policy, target.hosted === true);
      requirePkce(discovery.as);
    } catch (err) {
      if (err instanceof BerthError) this.#discovered.set(target.server, { error: { code: err.code, message: err.message } });
      throw err;
    }
    const as = discovery.as;
    this.#discovered.set(target.server, { issuer: as.issuer });
    const scopes = challenge?.scope ?? (settings?.scopes.length ? settings.scopes.join(' ') : undefined) ?? discovery.scopesSupported?.join(' ');
    const redirectUri = `${baseUrl}${CALLBACK_PATH}`;
    const client = await this.#clientFor(target, as, redirectUri, policy);
    const { verifier, challenge: codeChallenge } = pkcePair();
    const state = randomValue();
    this.#pending.set(state, { user, owner: ownerFor(user, target), server: target.server, verifier, redirectUri, discovery, auth: clientAuth(client, as.issuer, settings), policy });
    const url = new URL(as.authorization_endpoint);
    const params: Record<string, string> = {
      response_type: 'code',
      client_id: client.clientId,
      redirect_uri: redirectUri,
      code_challenge: codeChallenge,
      code_challenge_method: 'S256',
      state,
      resource: discovery.resource,
      ...(scopes === undefined || scopes === '' ? {} : { scope: scopes }),
    };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    this.#o.logger.info({ server: target.server, user, issuer: as.issuer }, 'OAuth authorization started');
    return url.href;
  }

  /**
   * The authorization server sent the user back. The state must be one berth
   * issued to this very owner; the `iss` (RFC 9207) must be the issuer asked.
   */
  async complete(user: string, params: URLSearchParams): Promise<{ readonly server: string }> {
    const state = params.get('state') ?? '';
    // One use only, whatever the outcome.
    const pending = this.#pending.take(state);
    if (pending === undefined) throw new BerthError('oauth_state_invalid', 'this authorization is unknown or expired; start it again from the server\'s /connect page');
    if (pending.user !== user) {
      this.#o.logger.warn({ server: pending.server, user }, 'OAuth callback refused: started by another user');
      throw new BerthError('oauth_state_invalid', 'this authorization was started by another user; start your own from the server\'s /connect page');
    }
    const as = pending.discovery.as;
    let code: string;
    try {
      code = authorizationCodeOf(params, as);
    } catch (err) {
      if (params.get('error') === 'invalid_target' && err instanceof BerthError && err.code === 'oauth_denied') throw resourceRefused(as.issuer, pending.discovery.resource, params.get('error_description'));
      if (err instanceof BerthError && err.code === 'oauth_iss_mismatch') this.#o.logger.warn({ server: pending.server, user, issuer: as.issuer }, 'OAuth callback refused: iss does not name the issuer');
      throw err;
    }
    let response: TokenResponse;
    try {
      response = await requestToken(
        as.token_endpoint,
        pending.auth,
        { grant_type: 'authorization_code', code, redirect_uri: pending.redirectUri, code_verifier: pending.verifier, resource: pending.discovery.resource },
        pending.policy,
      );
    } catch (err) {
      if (err instanceof GrantError && err.oauthError === 'invalid_target') throw resourceRefused(as.issuer, pending.discovery.resource, undefined);
      // The code belongs to the forgotten client; a new registration needs a new authorization.
      if (err instanceof GrantError && isClientUnknown(err) && (await this.#forgetRegistration(pending.server, as.issuer, pending.auth.client))) {
        throw new GrantError(`the authorization server ${as.issuer} no longer knows berth's registration (${err.oauthError}); press Authorize again and berth registers anew`, err.oauthError);
      }
      throw err;
    }
    await this.#save(pending.owner, pending.server, this.#tokenSetOf(response, undefined, pending.discovery, pending.auth.client));
    this.#o.logger.info({ server: pending.server, user, issuer: as.issuer }, 'OAuth authorization completed');
    return { server: pending.server };
  }

  /** Forgets the owner's token, revoking it at the authorization server where it offers revocation. */
  async disconnect(user: string, target: OAuthTarget): Promise<boolean> {
    const owner = ownerFor(user, target);
    const set = await this.#tokenSet(owner, target.server);
    if (set === undefined) return false;
    if (set.revocationEndpoint !== undefined) {
      const policy = { allowPrivateNetworks: target.oauth?.allowPrivateNetworks ?? false };
      const token = set.refreshToken ?? set.accessToken;
      const revoked = await revokeToken(set.revocationEndpoint, clientAuth(set.client, set.issuer, target.oauth), token, set.refreshToken === undefined ? 'access_token' : 'refresh_token', policy).catch(() => false);
      if (!revoked) this.#o.logger.warn({ server: target.server, user: owner }, 'OAuth token revocation failed; the local copy is deleted anyway');
    }
    await this.#forget(owner, target.server);
    return true;
  }

  async status(user: string, target: OAuthTarget): Promise<AuthorizationStatus> {
    const set = await this.#tokenSet(ownerFor(user, target), target.server);
    const discovery = this.#discovered.get(target.server);
    const mode = target.oauth !== undefined ? 'configured' : this.#challenges.has(target.server) ? 'challenged' : 'none';
    const base = { mode, ...(discovery === undefined ? {} : { discovery }) } as const;
    if (set === undefined) return { ...base, connected: false };
    return { ...base, connected: true, issuer: set.issuer, refreshable: set.refreshToken !== undefined, ...(set.expiresAt === undefined ? {} : { expiresAt: set.expiresAt }), ...(set.scope === undefined ? {} : { scope: set.scope }) };
  }

  /** Calls `listener` after an owner's token for a server changed or went; returns the function that stops it. */
  onChange(listener: OAuthListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** berth's Client ID Metadata Document, served at `client_id` itself. */
  clientMetadata(clientId: string, redirectUri: string): Record<string, unknown> {
    return { client_id: clientId, client_name: 'berth', redirect_uris: [redirectUri], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }

  async #tokenSet(owner: string, server: string): Promise<TokenSet | undefined> {
    const key = keyOf(owner, server);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const set = await this.#o.store.token(owner, server);
    this.#cache.set(key, set ?? null);
    return set;
  }

  /** One refresh for all concurrent callers; a dead refresh token deletes the set and asks the user again. */
  #refresh(owner: string, target: OAuthTarget, set: TokenSet): Promise<TokenSet> {
    const key = keyOf(owner, target.server);
    let flight = this.#refreshing.get(key);
    if (flight !== undefined) return flight;
    // A caller that read the set before another's refresh finished: the new set serves it, and its
    // refresh token, already rotated away, must not be sent again (servers revoke the grant on reuse).
    const current = this.#cache.get(key);
    if (current !== undefined && current !== null && current.accessToken !== set.accessToken && (current.refreshAt === undefined || this.#now() < current.refreshAt)) return Promise.resolve(current);
    flight = (async () => {
      if (set.refreshToken === undefined) {
        await this.#forget(owner, target.server);
        throw authorizationRequired(target.server, `your authorization for server ${target.server} expired`);
      }
      const policy = { allowPrivateNetworks: target.oauth?.allowPrivateNetworks ?? false };
      let response: TokenResponse;
      try {
        response = await requestToken(set.tokenEndpoint, clientAuth(set.client, set.issuer, target.oauth), { grant_type: 'refresh_token', refresh_token: set.refreshToken, resource: set.resource }, policy);
      } catch (err) {
        if (err instanceof GrantError && err.oauthError !== undefined && ['invalid_grant', 'invalid_request', 'invalid_client', 'unauthorized_client'].includes(err.oauthError)) {
          this.#o.logger.info({ server: target.server, user: owner, error: err.oauthError }, 'OAuth refresh refused; the user is asked to authorize again');
          if (isClientUnknown(err)) await this.#forgetRegistration(target.server, set.issuer, set.client);
          await this.#forget(owner, target.server);
          throw authorizationRequired(target.server, `your authorization for server ${target.server} is no longer valid`);
        }
        // The authorization server is down: a token not yet expired still serves.
        if (set.expiresAt !== undefined && this.#now() < set.expiresAt) return set;
        throw new ProxyError('upstream_unavailable', `refreshing the token for server ${target.server} failed: ${(err as Error).message}`, { cause: err });
      }
      const next = this.#tokenSetOf(response, set, { resource: set.resource, as: { issuer: set.issuer, token_endpoint: set.tokenEndpoint, ...(set.revocationEndpoint === undefined ? {} : { revocation_endpoint: set.revocationEndpoint }) } }, set.client);
      await this.#save(owner, target.server, next);
      this.#o.logger.debug({ server: target.server, user: owner }, 'OAuth token refreshed');
      return next;
    })().finally(() => this.#refreshing.delete(key));
    this.#refreshing.set(key, flight);
    return flight;
  }

  #tokenSetOf(response: TokenResponse, previous: TokenSet | undefined, discovery: { readonly resource: string; readonly as: Pick<AuthServerMetadata, 'issuer' | 'token_endpoint' | 'revocation_endpoint'> }, client: ClientIdentity): TokenSet {
    // Rotation: a new refresh token replaces the old; none sent keeps the old one.
    const refreshToken = response.refreshToken ?? previous?.refreshToken;
    const scope = response.scope ?? previous?.scope;
    return {
      accessToken: response.accessToken,
      ...(refreshToken === undefined ? {} : { refreshToken }),
      ...(response.expiresIn === undefined ? {} : { expiresAt: this.#now() + response.expiresIn * 1000, refreshAt: this.#now() + response.expiresIn * 1000 - Math.min(REFRESH_SKEW_MS, response.expiresIn * 250) }),
      ...(scope === undefined ? {} : { scope }),
      issuer: discovery.as.issuer,
      resource: discovery.resource,
      tokenEndpoint: discovery.as.token_endpoint,
      ...(discovery.as.revocation_endpoint === undefined ? {} : { revocationEndpoint: discovery.as.revocation_endpoint }),
      client,
    };
  }

  /** Static client, else a Client ID Metadata Document, else the registration made once per (server, issuer). */
  async #clientFor(target: OAuthTarget, as: AuthServerMetadata, redirectUri: string, policy: FetchPolicy): Promise<ClientIdentity> {
    const settings = target.oauth;
    if (settings?.clientId !== undefined) {
      const secret = settings.clientSecret;
      return { clientId: settings.clientId, ...(secret === undefined ? {} : { clientSecret: secret }), authMethod: settings.tokenEndpointAuthMethod ?? (secret === undefined ? 'none' : 'client_secret_basic') };
    }
    const cimd = settings?.clientMetadataUrl ?? (this.#o.publicUrl?.startsWith('https://') === true ? `${this.#o.publicUrl.replace(/\/+$/, '')}${CLIENT_METADATA_PATH}` : undefined);
    if (as.client_id_metadata_document_supported === true && cimd !== undefined) return { clientId: cimd, authMethod: 'none' };
    const key = keyOf(target.server, as.issuer);
    let flight = this.#registering.get(key);
    if (flight === undefined) {
      flight = (async () => {
        const stored = await this.#o.store.client(target.server, as.issuer);
        // A registration names its redirect URI: one made for another public URL is made again. So is one
        // the server forgot (RFC 7592 read, where it offers it): the user is never sent to an unknown client.
        if (stored?.redirectUri === redirectUri) {
          if ((await registrationKnown(stored, policy)) !== false) return stored;
          this.#o.logger.info({ server: target.server, issuer: as.issuer }, 'OAuth registration forgotten by the authorization server; registering again');
        }
        const registered = { ...(await registerClient(as, redirectUri, policy)), redirectUri };
        await this.#o.store.saveClient(target.server, as.issuer, registered);
        this.#o.logger.info({ server: target.server, issuer: as.issuer }, 'OAuth client registered');
        return registered;
      })().finally(() => this.#registering.delete(key));
      this.#registering.set(key, flight);
    }
    return flight;
  }

  /**
   * The authorization server refused a client berth registered: the stored
   * registration goes, so the next authorization registers once more. True
   * when it was the stored one (a static or CIMD client is not berth's to drop).
   */
  async #forgetRegistration(server: string, issuer: string, client: ClientIdentity): Promise<boolean> {
    if (client.redirectUri === undefined) return false;
    const stored = await this.#o.store.client(server, issuer);
    if (stored?.clientId !== client.clientId) return false;
    await this.#o.store.deleteClient(server, issuer);
    this.#o.logger.info({ server, issuer }, 'OAuth registration refused by the authorization server; the next authorization registers again');
    return true;
  }

  async #save(owner: string, server: string, set: TokenSet): Promise<void> {
    await this.#o.store.saveToken(owner, server, set);
    this.#cache.set(keyOf(owner, server), set);
    this.#changed(owner, server);
  }

  async #forget(owner: string, server: string): Promise<void> {
    this.#cache.set(keyOf(owner, server), null);
    await this.#o.store.deleteToken(owner, server);
    this.#changed(owner, server);
  }

  #changed(owner: string, server: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(owner, server);
      } catch (err) {
        this.#o.logger.error({ err, server }, 'OAuth listener failed');
      }
    }
  }

}

function authorizationRequired(server: string, message: string): ProxyError {
  return new ProxyError('authorization_required', message, { missing: { server, names: [], authorization: true } });
}

/** How berth authenticates as `client` at `issuer`: a private_key_jwt client signs with the configured key. */
function clientAuth(client: ClientIdentity, issuer: string, settings: OAuthSettings | undefined): ClientAuth {
  return { client, issuer, ...(client.authMethod === 'private_key_jwt' && settings?.privateKey !== undefined ? { privateKey: settings.privateKey } : {}) };
}

/** RFC 8707 invalid_target: the authorization server will not issue tokens for the server's URL. */
function resourceRefused(issuer: string, resource: string, description: string | null | undefined): BerthError {
  const why = description === null || description === undefined ? '' : `: ${description}`;
  return new BerthError('oauth_resource_refused', `the authorization server ${issuer} refuses the resource ${resource} (invalid_target${why}); berth asks every token for the server's URL (RFC 8707), so the authorization server must know it as a resource`);
}

/** The token endpoint does not know the client, or it failed to authenticate (RFC 6749 §5.2): for a registration, one the server dropped. */
function isClientUnknown(err: GrantError): boolean {
  return err.oauthError === 'invalid_client';
}

/** Whose token a user's calls use: their own, or the server's one shared token. */
function ownerFor(user: string, target: OAuthTarget): string {
  return target.oauth?.perUser === false ? SHARED_OWNER : user;
}

function keyOf(a: string, b: string): string {
  return `${a}\n${b}`;
}
