import type { ClientKeySettings } from '../config/client-key.ts';
import { BerthError } from '../errors.ts';
import { CLIENT_ASSERTION_TYPE, clientAssertion } from './client-assertion.ts';
import type { AuthServerMetadata } from './discovery.ts';
import type { FetchPolicy } from './ssrf.ts';
import { guardedFetch } from './ssrf.ts';
import type { ClientIdentity } from './token-store.ts';

// Requests to the authorization server's endpoints: token (code and refresh
// grants), registration (RFC 7591) and revocation (RFC 7009).

/** The authorization server refused (its `error`), or answered something berth cannot use. */
export class GrantError extends BerthError {
  /** The OAuth `error` code, when the server sent one. */
  readonly oauthError: string | undefined;

  constructor(message: string, oauthError?: string) {
    super('oauth_token_failed', message);
    this.name = 'GrantError';
    this.oauthError = oauthError;
  }
}

/** Authenticating as a client: its identity, the issuer it talks to, and a private_key_jwt client's key (from the config, never stored with the identity). */
export interface ClientAuth {
  readonly client: ClientIdentity;
  readonly issuer: string;
  readonly privateKey?: ClientKeySettings;
}

export interface TokenResponse {
  readonly accessToken: string;
  readonly refreshToken?: string;
  readonly expiresIn?: number;
  readonly scope?: string;
  /** The OpenID Connect ID token, when `openid` was asked for. */
  readonly idToken?: string;
}

/** POSTs a grant to the token endpoint with the client's authentication. */
export async function requestToken(endpoint: string, auth: ClientAuth, params: Readonly<Record<string, string>>, policy: FetchPolicy): Promise<TokenResponse> {
  const body = new URLSearchParams(params);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  await authenticate(auth, body, headers);
  const res = await guardedFetch(endpoint, { method: 'POST', headers, body }, policy);
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok || typeof json.access_token !== 'string') {
    const error = typeof json.error === 'string' ? json.error : undefined;
    throw new GrantError(`the token endpoint refused the grant: ${error ?? `HTTP ${res.status}`}${typeof json.error_description === 'string' ? ` (${json.error_description})` : ''}`, error);
  }
  if (typeof json.token_type !== 'string' || json.token_type.toLowerCase() !== 'bearer') throw new GrantError(`the token endpoint issued a ${String(json.token_type)} token; berth sends Bearer tokens only`);
  return {
    accessToken: json.access_token,
    ...(typeof json.refresh_token === 'string' ? { refreshToken: json.refresh_token } : {}),
    ...(typeof json.expires_in === 'number' && json.expires_in > 0 ? { expiresIn: json.expires_in } : {}),
    ...(typeof json.scope === 'string' ? { scope: json.scope } : {}),
    ...(typeof json.id_token === 'string' ? { idToken: json.id_token } : {}),
  };
}

/**
 * Dynamic client registration: a public client (or a confidential one if the
 * server insists) with berth's callback. No `scope`: it would cap every later
 * authorization of this one registration, a step-up's wider scope included.
 */
export async function registerClient(as: AuthServerMetadata, redirectUri: string, policy: FetchPolicy): Promise<ClientIdentity> {
  if (as.registration_endpoint === undefined) throw new BerthError('oauth_registration_failed', `the authorization server ${as.issuer} offers no dynamic client registration; configure oauth.clientId`);
  const metadata = {
    client_name: 'berth',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
  const res = await guardedFetch(as.registration_endpoint, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(metadata) }, policy);
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok || typeof json.client_id !== 'string') {
    throw new BerthError('oauth_registration_failed', `registration at ${as.issuer} failed: ${typeof json.error === 'string' ? json.error : `HTTP ${res.status}`}${typeof json.error_description === 'string' ? ` (${json.error_description})` : ''}`);
  }
  const method = json.token_endpoint_auth_method;
  const secret = typeof json.client_secret === 'string' ? json.client_secret : undefined;
  const authMethod = method === 'client_secret_post' || method === 'client_secret_basic' ? method : secret === undefined ? 'none' : 'client_secret_basic';
  const registration = typeof json.registration_client_uri === 'string' && typeof json.registration_access_token === 'string' ? { uri: json.registration_client_uri, accessToken: json.registration_access_token } : undefined;
  return { clientId: json.client_id, ...(secret === undefined ? {} : { clientSecret: secret }), authMethod, ...(registration === undefined ? {} : { registration }) };
}

/**
 * RFC 7592 read: whether the authorization server still knows a registered
 * client. false only for a clear "no" (401, 403, 404); undefined when it
 * cannot tell (no configuration endpoint, a server error, no answer).
 */
export async function registrationKnown(client: ClientIdentity, policy: FetchPolicy): Promise<boolean | undefined> {
  if (client.registration === undefined) return undefined;
  const res = await guardedFetch(client.registration.uri, { headers: { authorization: `Bearer ${client.registration.accessToken}`, accept: 'application/json' } }, policy).catch(() => undefined);
  await res?.body?.cancel();
  if (res === undefined) return undefined;
  if (res.ok) return true;
  return [401, 403, 404].includes(res.status) ? false : undefined;
}

/** RFC 7009: revokes a token; the server's answer matters little, the local copy goes anyway. */
export async function revokeToken(endpoint: string, auth: ClientAuth, token: string, hint: 'refresh_token' | 'access_token', policy: FetchPolicy): Promise<boolean> {
  const body = new URLSearchParams({ token, token_type_hint: hint });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  await authenticate(auth, body, headers);
  const res = await guardedFetch(endpoint, { method: 'POST', headers, body }, policy);
  await res.body?.cancel();
  return res.ok;
}

async function authenticate({ client, issuer, privateKey }: ClientAuth, body: URLSearchParams, headers: Record<string, string>): Promise<void> {
  if (client.authMethod === 'private_key_jwt') {
    if (privateKey === undefined) throw new GrantError(`client ${client.clientId} authenticates with private_key_jwt, but oauth.privateKey is not configured`);
    body.set('client_id', client.clientId);
    body.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
    body.set('client_assertion', await clientAssertion(client.clientId, issuer, privateKey, Date.now()));
    return;
  }
  if (client.authMethod === 'client_secret_basic' && client.clientSecret !== undefined) {
    // RFC 6749 2.3.1: both parts form-encoded before base64.
    headers.authorization = `Basic ${Buffer.from(`${formEncode(client.clientId)}:${formEncode(client.clientSecret)}`).toString('base64')}`;
    return;
  }
  body.set('client_id', client.clientId);
  if (client.authMethod === 'client_secret_post' && client.clientSecret !== undefined) body.set('client_secret', client.clientSecret);
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}
