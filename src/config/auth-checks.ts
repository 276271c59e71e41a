// What the schema cannot see in `auth`: anonymous access on a listener others reach, audiences that
// would come from a Host header anyone can set, proxy addresses that are not addresses, a browser
// sign-in that could never succeed or would name someone other than the tokens of its issuer do. One
// check for `berth validate`, `berth serve` and every reload.
import { addressOrCidrProblem, isLoopbackAddress } from '../net/cidr.ts';
import type { BerthConfiguration } from './types.gen.ts';

export interface AuthProblem {
  /** Stable code, see docs/errors.md. */
  readonly code: 'auth_none_exposed' | 'auth_public_url_missing' | 'auth_invalid_proxy' | 'auth_signin_shadowed' | 'auth_signin_scopes' | 'auth_signin_private';
  /** Where: `['auth', 1]`, `['auth', 2, 'trustedProxies', 0]`. */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** Empty when berth may start with these providers on this listener. */
export function authProblems(config: Pick<BerthConfiguration, 'auth' | 'listen'>): AuthProblem[] {
  const host = config.listen?.host ?? '127.0.0.1';
  const loopback = isLoopbackAddress(host) || host === 'localhost';
  const problems: AuthProblem[] = [];
  (config.auth ?? []).forEach((provider, i) => {
    const path = ['auth', i];
    if (provider.type === 'none' && !loopback) {
      problems.push({ code: 'auth_none_exposed', path, message: `provider \`none\` serves anonymous clients, but berth listens on ${host}, which others can reach: remove it, or set listen.host to 127.0.0.1` });
    }
    if (provider.type === 'jwt' && !loopback && config.listen?.publicUrl === undefined) {
      problems.push({ code: 'auth_public_url_missing', path, message: `tokens must be minted for this server's URL, which berth cannot know while it listens on ${host}: set listen.publicUrl to the URL clients use` });
    }
    if (provider.type === 'jwt' && provider.browserSignIn !== undefined) problems.push(...signInProblems(config.auth ?? [], i));
    if (provider.type === 'header') {
      (provider.trustedProxies ?? []).forEach((cidr, j) => {
        const problem = addressOrCidrProblem(cidr);
        if (problem !== undefined) problems.push({ code: 'auth_invalid_proxy', path: [...path, 'trustedProxies', j], message: problem });
      });
    }
  });
  return problems;
}

/**
 * A browser sign-in must make the user an MCP client with the same token
 * would be: the provider must be the one that decides its issuer's tokens,
 * and ask for the scopes it requires of them.
 */
function signInProblems(auth: NonNullable<BerthConfiguration['auth']>, i: number): AuthProblem[] {
  const provider = auth[i]!;
  const signIn = provider.browserSignIn!;
  const path = ['auth', i, 'browserSignIn'];
  const problems: AuthProblem[] = [];
  const first = auth.findIndex((p) => p.type === 'jwt' && p.issuer === provider.issuer);
  if (first < i) {
    problems.push({ code: 'auth_signin_shadowed', path, message: `auth[${first}] has the same issuer and decides every token of it, so a browser signed in here would not be who the issuer's tokens make an MCP client: move browserSignIn to auth[${first}]` });
  }
  const missing = signIn.scopes === undefined ? [] : (provider.requiredScopes ?? []).filter((s) => !signIn.scopes!.includes(s));
  if (missing.length > 0) {
    problems.push({ code: 'auth_signin_scopes', path: [...path, 'scopes'], message: `leaves out ${missing.join(', ')}, which this provider requires of every token: every sign-in would be refused (add ${missing.length === 1 ? 'it' : 'them'})` });
  }
  if (signIn.allowPrivateNetworks !== true && provider.issuer !== undefined && URL.canParse(provider.issuer) && new URL(provider.issuer).protocol === 'http:') {
    problems.push({ code: 'auth_signin_private', path, message: `the issuer ${provider.issuer} is plain http, which the sign-in's SSRF guard refuses: use https, or set browserSignIn.allowPrivateNetworks: true for an issuer on your own network` });
  }
  return problems;
}
