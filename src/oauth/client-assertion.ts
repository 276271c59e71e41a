import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { ClientKeySettings } from '../config/client-key.ts';
import { readClientKey } from '../config/client-key.ts';
import { BerthError } from '../errors.ts';

// private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): the client proves
// itself with a short-lived JWT signed by its private key, new for every request.

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Long enough for a slow round trip, short enough that a copy is soon worthless; the jti makes it single-use at the server. */
const LIFETIME_S = 60;

/**
 * A client assertion: iss = sub = the client ID, aud = the issuer identifier
 * (the audience draft-ietf-oauth-rfc7523bis settles on, and one every server
 * accepts for each of its endpoints), a fresh jti, a one-minute exp.
 */
export async function clientAssertion(clientId: string, issuer: string, settings: ClientKeySettings, now: number): Promise<string> {
  const key = readClientKey(settings);
  // Validation refuses such a key; this is a key that changed under a running berth.
  if (!key.ok) throw new BerthError('oauth_token_failed', `oauth.privateKey: the key ${key.problem}`);
  const iat = Math.floor(now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', ...(key.kid === undefined ? {} : { kid: key.kid }) })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(issuer)
    .setJti(randomUUID())
    .setIssuedAt(iat)
    .setExpirationTime(iat + LIFETIME_S)
    .sign(key.key);
}
