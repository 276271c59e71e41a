import { createHash, randomBytes } from 'node:crypto';
import { BerthError } from '../errors.ts';
import type { AuthServerMetadata } from './discovery.ts';

// The parts of an authorization-code round every berth client shares: PKCE
// S256 (refused without it), fresh random values, and reading the answer the
// authorization server sent the browser back with.

/** A random value for `state`, `nonce` or a verifier: 256 bits, base64url. */
export function randomValue(): string {
  return randomBytes(32).toString('base64url');
}

/** A PKCE verifier and its S256 challenge (RFC 7636). */
export function pkcePair(): { readonly verifier: string; readonly challenge: string } {
  const verifier = randomValue();
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** Refuses an authorization server that does not advertise S256: berth never authorizes without PKCE. */
export function requirePkce(as: AuthServerMetadata): void {
  if (as.code_challenge_methods_supported?.includes('S256') !== true) {
    throw new BerthError('oauth_pkce_unsupported', `the authorization server ${as.issuer} does not advertise PKCE with S256; berth refuses to authorize without it`);
  }
}

/**
 * The code of an authorization response whose state was already matched: the
 * `iss` (RFC 9207) must name the issuer asked (and be there if it promised
 * it), and an `error` is the server's refusal.
 */
export function authorizationCodeOf(params: URLSearchParams, as: AuthServerMetadata): string {
  const iss = params.get('iss');
  if ((iss === null && as.authorization_response_iss_parameter_supported === true) || (iss !== null && iss !== as.issuer)) {
    throw new BerthError('oauth_iss_mismatch', `the answer did not come from ${as.issuer} (iss ${iss ?? 'missing'}); authorization refused`);
  }
  const error = params.get('error');
  if (error !== null) {
    const description = params.get('error_description');
    throw new BerthError('oauth_denied', `the authorization server answered ${error}${description === null ? '' : `: ${description}`}`);
  }
  const code = params.get('code');
  if (code === null || code === '') throw new BerthError('oauth_denied', 'the authorization server sent no code');
  return code;
}
