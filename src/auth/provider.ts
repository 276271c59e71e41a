import type { IncomingHttpHeaders } from 'node:http';
import type { Identity, ProviderType } from '../identity.ts';

/** What a provider sees of a request. */
export interface AuthRequest {
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
  /** Audiences a token may carry here: the resource URLs of the route the request is for. */
  readonly audiences: readonly string[];
}

/**
 * One provider's answer: `pass` when the request carries no credential of its
 * kind (the next provider is asked), `invalid` when it does and it is wrong
 * (the chain stops: a bad key is not retried as something else).
 */
export type Verdict =
  | { readonly kind: 'pass' }
  | { readonly kind: 'identity'; readonly identity: Identity; readonly requiredScopes?: readonly string[] }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** The credential could not be checked right now (the issuer is unreachable). */
  | { readonly kind: 'unavailable'; readonly reason: string };

export interface Provider {
  readonly type: ProviderType;
  verify(request: AuthRequest): Verdict | Promise<Verdict>;
  /**
   * Whether this provider, as configured now, still stands behind an identity
   * it established earlier (for a session opened then). Without it, any
   * provider of the identity's type does.
   */
  vouches?(identity: Identity): boolean;
  /** A jwt provider's browser sign-in through its issuer, when configured. */
  readonly signIn?: BrowserSignIn;
}

/**
 * A jwt provider's browser sign-in (`browserSignIn`): the client berth is at
 * the provider's issuer, and the provider's own checks for what comes back.
 */
export interface BrowserSignIn {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly scopes: readonly string[];
  /** The issuer and its endpoints may be plain http and private addresses. */
  readonly allowPrivateNetworks: boolean;
  /** Who an access token makes the caller, by the provider's own rules: whom an MCP client sending it for `audiences` would be. */
  identify(accessToken: string, audiences: readonly string[]): Promise<Verdict>;
  /** Why an ID token is not one the issuer signed for this client and nonce, or undefined when it is. */
  idTokenProblem(idToken: string, nonce: string): Promise<string | undefined>;
}

export const PASS: Verdict = Object.freeze({ kind: 'pass' });

/** The token of `Authorization: Bearer <token>`, if that is the scheme. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const value = headers.authorization;
  if (value === undefined || value.length < 8 || value.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const token = value.slice(7).trim();
  return token === '' ? undefined : token;
}

/** A list-valued header or claim: an array of strings, or one string separated by commas or spaces. */
export function listOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v !== '');
  if (typeof value !== 'string') return [];
  return value.split(/[\s,]+/).filter((v) => v !== '');
}
