import { createHash } from 'node:crypto';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { AuthProvider } from '../config/types.gen.ts';
import type { Logger } from '../observe/log.ts';
import type { Identity } from '../identity.ts';
import { keyOf } from '../identity.ts';
import type { AuthRequest, Provider, Verdict } from './provider.ts';
import { bearerToken, listOf, PASS } from './provider.ts';

export interface JwtOptions {
  readonly logger: Logger;
  /** After a JWKS fetch, an unknown `kid` waits this long before the next fetch (rate limit); jose's default is 30 s. */
  readonly jwksCooldownMs?: number;
  readonly now?: () => number;
}

const DEFAULT_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const FETCH_TIMEOUT_MS = 5_000;
/** Keys are refetched at least this often, so a removed key stops working. */
const JWKS_MAX_AGE_MS = 10 * 60_000;
/** A failed discovery is retried no sooner than this. */
const DISCOVERY_RETRY_MS = 5_000;
/** Introspection answers are reused this long at most (and never past the token's exp). */
const INTROSPECTION_TTL_MS = 60_000;
const INTROSPECTION_CACHE_MAX = 10_000;

interface Discovered {
  readonly jwks: JWTVerifyGetKey;
  readonly introspectionEndpoint?: string;
}

type Claims = JWTPayload & Record<string, unknown>;

/**
 * OAuth/OIDC access tokens. JWTs are checked locally against the issuer's
 * JWKS (jose's remote key set: cached, refetched for an unknown `kid` at most
 * once per cooldown); opaque tokens at the RFC 7662 introspection endpoint
 * when one is configured. Tokens of another issuer pass to the next provider.
 */
export function jwtProvider(settings: AuthProvider, options: JwtOptions): Provider {
  const issuer = settings.issuer ?? '';
  const algorithms = settings.algorithms ?? DEFAULT_ALGORITHMS;
  const clockTolerance = settings.clockSkewSeconds ?? 30;
  const userClaim = settings.userClaim ?? 'sub';
  const groupsClaim = settings.groupsClaim ?? 'groups';
  const requiredScopes = settings.requiredScopes ?? [];
  const now = options.now ?? Date.now;
  const log = options.logger.child({ issuer });
  let discovered: { at: number; failed: boolean; value: Promise<Discovered> } | undefined;
  const introspected = new Map<string, { claims: Claims; until: number }>();

  const discover = (): Promise<Discovered> => {
    if (discovered === undefined || (discovered.failed && now() - discovered.at > DISCOVERY_RETRY_MS)) {
      const value = discoverKeys(settings, options.jwksCooldownMs);
      const entry = { at: now(), value, failed: false };
      value.catch((err: unknown) => {
        entry.failed = true;
        log.warn({ err: (err as Error).message }, 'issuer discovery failed');
      });
      discovered = entry;
    }
    return discovered.value;
  };

  const identityOf = (claims: Claims): Verdict => {
    // A client-credentials token has no end user: the client acts as itself (RFC 9068 names it in client_id).
    const user = claims[userClaim] ?? (userClaim === 'sub' ? claims['client_id'] : undefined);
    if (typeof user !== 'string' || user === '') return { kind: 'invalid', reason: `the token has no ${userClaim} claim` };
    const scopes = claims['scope'] !== undefined ? listOf(claims['scope']) : listOf(claims['scp']);
    const identity: Identity = { user, key: keyOf(`jwt:${issuer}#`, user, settings.usernamePrefix), groups: listOf(claims[groupsClaim]), scopes, provider: 'jwt' };
    return { kind: 'identity', identity, requiredScopes };
  };

  const verifyJwt = async (token: string, request: AuthRequest): Promise<Verdict> => {
    let unverified: Claims;
    try {
      if (decodeProtectedHeader(token).alg === 'none') return { kind: 'invalid', reason: 'unsigned tokens are not accepted' };
      unverified = decodeJwt(token);
    } catch {
      return { kind: 'invalid', reason: 'the token is malformed' };
    }
    // Another jwt provider may own this issuer.
    if (unverified.iss !== issuer) return PASS;
    let keys: Discovered;
    try {
      keys = await discover();
    } catch (err) {
      return { kind: 'unavailable', reason: `cannot reach the issuer: ${(err as Error).message}` };
    }
    try {
      const { payload } = await jwtVerify(token, keys.jwks, {
        issuer,
        audience: audiencesFor(settings, request),
        algorithms,
        clockTolerance,
        requiredClaims: ['exp'],
        currentDate: new Date(now()),
      });
      return identityOf(payload as Claims);
    } catch (err) {
      return refusalOf(err);
    }
  };

  const introspect = async (token: string, request: AuthRequest): Promise<Verdict> => {
    const key = createHash('sha256').update(token).digest('base64url');
    const cached = introspected.get(key);
    if (cached !== undefined && cached.until > now()) return checkIntrospected(cached.claims, request);
    let endpoint: string | undefined = settings.introspection?.endpoint;
    try {
      endpoint ??= (await discover()).introspectionEndpoint;
    } catch (err) {
      return { kind: 'unavailable', reason: `cannot reach the issuer: ${(err as Error).message}` };
    }
    if (endpoint === undefined) return PASS;
    const { clientId = '', clientSecret = '' } = settings.introspection ?? {};
    let claims: Claims;
    try {
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}` },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      if (!response.ok) throw new Error(`introspection answered ${response.status}`);
      claims = (await response.json()) as Claims;
    } catch (err) {
      return { kind: 'unavailable', reason: `cannot introspect the token: ${(err as Error).message}` };
    }
    if (claims['active'] !== true) return { kind: 'invalid', reason: 'the token is not active' };
    const until = Math.min(now() + INTROSPECTION_TTL_MS, typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity);
    if (introspected.size >= INTROSPECTION_CACHE_MAX) introspected.delete(introspected.keys().next().value!);
    introspected.set(key, { claims, until });
    return checkIntrospected(claims, request);
  };

  const checkIntrospected = (claims: Claims, request: AuthRequest): Verdict => {
    if (claims.iss !== undefined && claims.iss !== issuer) return { kind: 'invalid', reason: 'the token was issued by another issuer' };
    if (typeof claims.exp === 'number' && claims.exp * 1000 + clockTolerance * 1000 < now()) return { kind: 'invalid', reason: 'the token expired' };
    const aud = listOf(claims.aud);
    const accepted = audiencesFor(settings, request);
    if (aud.length === 0 && settings.introspection?.allowMissingAudience !== true) return { kind: 'invalid', reason: 'the token names no audience (aud); the issuer must mint it for this resource' };
    if (aud.length > 0 && !aud.some((a) => accepted.includes(a))) return { kind: 'invalid', reason: 'the token is for another resource (aud)' };
    return identityOf(claims);
  };

  const verify = (request: AuthRequest): Verdict | Promise<Verdict> => {
    const token = bearerToken(request.headers);
    if (token === undefined) return PASS;
    if (isJwtShaped(token)) return verifyJwt(token, request);
    return settings.introspection === undefined ? PASS : introspect(token, request);
  };

  /** OpenID Connect Core 3.1.3.7: this issuer's key, this client among the audiences (and `azp` when it is not alone), the nonce sent. */
  const idTokenProblem = async (idToken: string, clientId: string, nonce: string): Promise<string | undefined> => {
    let keys: Discovered;
    try {
      keys = await discover();
    } catch (err) {
      return `cannot reach the issuer: ${(err as Error).message}`;
    }
    try {
      const { payload } = await jwtVerify(idToken, keys.jwks, { issuer, audience: clientId, algorithms, clockTolerance, requiredClaims: ['exp', 'sub'], currentDate: new Date(now()) });
      const audiences = listOf(payload.aud);
      if (audiences.length > 1 && payload['azp'] !== clientId) return 'the ID token was issued to another client (azp)';
      return payload['nonce'] === nonce ? undefined : 'the ID token is not for this sign-in (nonce)';
    } catch (err) {
      if ((err as { claim?: string }).claim === 'aud') return 'the ID token was issued to another client (aud)';
      const verdict = refusalOf(err);
      return 'reason' in verdict ? verdict.reason.replace(/^the token\b/, 'the ID token') : 'the ID token is not valid';
    }
  };

  const browser = settings.browserSignIn;
  return {
    type: 'jwt',
    verify,
    ...(browser === undefined
      ? {}
      : {
          signIn: {
            issuer,
            clientId: browser.clientId,
            ...(browser.clientSecret === undefined ? {} : { clientSecret: browser.clientSecret }),
            scopes: browser.scopes ?? ['openid', ...requiredScopes],
            allowPrivateNetworks: browser.allowPrivateNetworks ?? false,
            async identify(accessToken, audiences) {
              const verdict = await verify({ headers: { authorization: `Bearer ${accessToken}` }, remoteAddress: undefined, audiences });
              return verdict.kind === 'pass' ? { kind: 'invalid', reason: `the token is not one of ${issuer}` } : verdict;
            },
            idTokenProblem: (idToken, nonce) => idTokenProblem(idToken, browser.clientId, nonce),
          },
        }),
  };
}

function audiencesFor(settings: AuthProvider, request: AuthRequest): string[] {
  return settings.audience === undefined ? [...request.audiences] : [...request.audiences, settings.audience];
}

function isJwtShaped(token: string): boolean {
  return /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);
}

/** Why jose refused a token, in words a client can act on; no token content. */
function refusalOf(err: unknown): Verdict {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return { kind: 'invalid', reason: 'the token expired' };
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = (err as { claim?: string }).claim;
      if (claim === 'aud') return { kind: 'invalid', reason: 'the token is for another resource (aud)' };
      if (claim === 'nbf') return { kind: 'invalid', reason: 'the token is not valid yet (nbf)' };
      return { kind: 'invalid', reason: `the token's ${claim ?? 'claims'} claim is not acceptable` };
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return { kind: 'invalid', reason: 'the token is signed with an algorithm berth does not accept' };
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return { kind: 'invalid', reason: 'no signing key of the issuer matches the token' };
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return { kind: 'invalid', reason: 'the token signature is invalid' };
    case 'ERR_JWKS_TIMEOUT':
      return { kind: 'unavailable', reason: 'the issuer did not answer for its signing keys' };
    // The key set answered with an error status, not JSON, or not a key set: the issuer's fault, not the token's.
    case 'ERR_JOSE_GENERIC':
    case 'ERR_JWKS_INVALID':
      return { kind: 'unavailable', reason: `cannot fetch the issuer's signing keys: ${(err as Error).message}` };
    default:
      if (code === undefined) return { kind: 'unavailable', reason: `cannot fetch the issuer's signing keys: ${(err as Error).message}` };
      return { kind: 'invalid', reason: 'the token is not valid' };
  }
}

/** The JWKS (from `jwksUri`, or issuer discovery) and the introspection endpoint. */
async function discoverKeys(settings: AuthProvider, cooldownMs: number | undefined): Promise<Discovered> {
  const issuer = settings.issuer ?? '';
  let jwksUri = settings.jwksUri;
  let introspectionEndpoint = settings.introspection?.endpoint;
  if (jwksUri === undefined || (settings.introspection !== undefined && introspectionEndpoint === undefined)) {
    const metadata = await fetchMetadata(issuer);
    jwksUri ??= typeof metadata['jwks_uri'] === 'string' ? metadata['jwks_uri'] : undefined;
    if (typeof metadata['introspection_endpoint'] === 'string') introspectionEndpoint ??= metadata['introspection_endpoint'];
    if (jwksUri === undefined) throw new Error(`the metadata of ${issuer} names no jwks_uri`);
  }
  const jwks = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: FETCH_TIMEOUT_MS, cacheMaxAge: JWKS_MAX_AGE_MS, ...(cooldownMs === undefined ? {} : { cooldownDuration: cooldownMs }) });
  return { jwks, ...(introspectionEndpoint === undefined ? {} : { introspectionEndpoint }) };
}

/** OIDC discovery, then RFC 8414 (path-inserted); the document must name this issuer. */
async function fetchMetadata(issuer: string): Promise<Record<string, unknown>> {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  const candidates = [`${url.origin}${path}/.well-known/openid-configuration`, `${url.origin}/.well-known/oauth-authorization-server${path}`];
  let lastError = 'no metadata';
  for (const candidate of candidates) {
    const response = await fetch(candidate, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!response.ok) {
      lastError = `${candidate} answered ${response.status}`;
      continue;
    }
    const metadata = (await response.json()) as Record<string, unknown>;
    if (metadata['issuer'] !== issuer) throw new Error(`${candidate} names issuer ${String(metadata['issuer'])}, not ${issuer}`);
    return metadata;
  }
  throw new Error(lastError);
}
