import { isDeepStrictEqual } from 'node:util';
import type { AuthProvider, BerthConfiguration } from '../config/types.gen.ts';
import type { Logger } from '../observe/log.ts';
import type { AuthProblem as ConfigAuthProblem } from '../config/auth-checks.ts';
import { authProblems } from '../config/auth-checks.ts';
import { isLoopbackAddress } from '../net/cidr.ts';
import { formatKeyPath } from '../config/issues.ts';
import { apiKeyProvider } from './api-key.ts';
import { headerProvider } from './header.ts';
import type { Identity } from '../identity.ts';
import { ANONYMOUS } from '../identity.ts';
import { jwtProvider } from './jwt.ts';
import type { AuthRequest, BrowserSignIn, Provider, Verdict } from './provider.ts';
import { bearerToken, PASS } from './provider.ts';

/** The providers of a config, asked in order; the first that recognises the request decides. */
export interface Authenticator {
  /** Whether the config has an `auth` section; without one, only loopback clients are served, anonymously. */
  readonly configured: boolean;
  /** Issuers of the jwt providers: the authorization servers of berth's protected-resource metadata. */
  readonly issuers: readonly string[];
  /** Scopes every jwt provider requires, on every route. */
  readonly requiredScopes: readonly string[];
  /** The jwt providers' browser sign-ins (`browserSignIn`), in config order. */
  readonly signIns: readonly BrowserSignIn[];
  /** A `pass` verdict means nobody recognised the request. */
  authenticate(request: AuthRequest): Promise<Verdict>;
  /** Whether a provider of these settings still stands behind an identity established earlier; see Provider.vouches. */
  vouches(identity: Identity): boolean;
}

export interface AuthenticatorOptions {
  readonly logger: Logger;
  /** Rate limit of JWKS refetches for an unknown `kid`; see JwtOptions. */
  readonly jwksCooldownMs?: number;
  /**
   * The running authenticator, on a reload: its providers whose settings did
   * not change are kept, with their caches (JWKS, introspection answers).
   */
  readonly previous?: Authenticator;
}

/** The providers each authenticator was built from, with their settings; for reuse on a reload. */
const built = new WeakMap<Authenticator, readonly { readonly settings: AuthProvider; readonly provider: Provider }[]>();

/** Anonymous callers on this host; everyone else passes to the next provider. */
const NONE_PROVIDER: Provider = {
  type: 'none',
  verify: (request) => (isLoopbackAddress(request.remoteAddress) ? { kind: 'identity', identity: ANONYMOUS } : PASS),
};

export function createAuthenticator(providers: readonly AuthProvider[] | undefined, options: AuthenticatorOptions): Authenticator {
  const running = options.previous === undefined ? [] : (built.get(options.previous) ?? []);
  const links = (providers ?? [{ type: 'none' }]).map((settings) => ({ settings, provider: running.find((l) => isDeepStrictEqual(l.settings, settings))?.provider ?? providerFor(settings, options) }));
  const chain = links.map((l) => l.provider);
  const jwt = (providers ?? []).filter((p) => p.type === 'jwt');
  const authenticator: Authenticator = {
    configured: providers !== undefined,
    issuers: [...new Set(jwt.map((p) => p.issuer ?? ''))],
    requiredScopes: [...new Set(jwt.flatMap((p) => p.requiredScopes ?? []))],
    signIns: chain.flatMap((p) => (p.signIn === undefined ? [] : [p.signIn])),
    async authenticate(request) {
      for (let i = 0; i < chain.length; i++) {
        const provider = chain[i] as Provider;
        const verdict = await provider.verify(request);
        if (verdict.kind === 'pass') continue;
        // A key one apiKey provider does not know may be the next one's (another usernamePrefix): ask it before refusing.
        const nextKeys = verdict.kind === 'invalid' && provider.type === 'apiKey' ? chain.findIndex((p, j) => j > i && p.type === 'apiKey') : -1;
        if (nextKeys === -1) return verdict;
        i = nextKeys - 1;
      }
      const presented = bearerToken(request.headers) !== undefined || request.headers['x-api-key'] !== undefined;
      return presented ? { kind: 'invalid', reason: 'the credential is not recognised' } : PASS;
    },
    vouches: (identity) => chain.some((p) => p.type === identity.provider && (p.vouches?.(identity) ?? true)),
  };
  built.set(authenticator, links);
  return authenticator;
}

function providerFor(settings: AuthProvider, options: AuthenticatorOptions): Provider {
  switch (settings.type) {
    case 'none':
      return NONE_PROVIDER;
    case 'apiKey':
      return apiKeyProvider(settings.keys ?? [], settings.usernamePrefix);
    case 'jwt':
      return jwtProvider(settings, { logger: options.logger, ...(options.jwksCooldownMs === undefined ? {} : { jwksCooldownMs: options.jwksCooldownMs }) });
    case 'header':
      return headerProvider(settings);
  }
}

/** A reason berth must not start with this auth config, its path written out (`auth[1]`). */
export interface AuthProblem {
  readonly code: ConfigAuthProblem['code'];
  readonly path: string;
  readonly message: string;
}

/** The config check (`authProblems`), for a reload that must also fit the listener berth runs on. */
export function checkAuthConfig(config: Pick<BerthConfiguration, 'auth' | 'listen'>): AuthProblem[] {
  return authProblems(config).map((p) => ({ code: p.code, path: formatKeyPath(p.path), message: p.message }));
}
