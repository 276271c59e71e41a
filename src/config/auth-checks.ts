// What the schema cannot see in `auth`: anonymous access on a listener others reach, audiences that
// would come from a Host header anyone can set, proxy addresses that are not addresses. One check for
// `berth validate`, `berth serve` and every reload.
import { addressOrCidrProblem, isLoopbackAddress } from './cidr.ts';
import type { BerthConfiguration } from './types.gen.ts';

export interface AuthProblem {
  /** Stable code, see docs/errors.md. */
  readonly code: 'auth_none_exposed' | 'auth_public_url_missing' | 'auth_invalid_proxy';
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
    if (provider.type === 'header') {
      (provider.trustedProxies ?? []).forEach((cidr, j) => {
        const problem = addressOrCidrProblem(cidr);
        if (problem !== undefined) problems.push({ code: 'auth_invalid_proxy', path: [...path, 'trustedProxies', j], message: problem });
      });
    }
  });
  return problems;
}
