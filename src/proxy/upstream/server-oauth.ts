// berth as each user's OAuth client towards one server, in the terms its
// connections use: whether it applies yet, and a connection's authorization.
import type { Route } from '../../desired/types.ts';
import type { Authorizer } from '../../oauth/authorizer.ts';
import { oauthTargetOf } from '../../oauth/authorizer.ts';
import { parseBearerChallenge } from '../../oauth/discovery.ts';
import type { ConnectionAuthorization } from './http-upstream.ts';

/**
 * berth as each user's OAuth client towards a remote or hosted server: with
 * an `oauth` block always; without one (discovery is the default) unless the
 * operator configured its Authorization header, whose 401 means that header
 * is wrong, not that the user must authorize. `user` is the caller's
 * identity key, the one `ownerOf` gives.
 */
export interface ServerOAuth {
  /** Whether the server takes tokens from berth: its `oauth` block, or a Bearer challenge seen. */
  applies(): boolean;
  connection(user: string | undefined): ConnectionAuthorization;
}

export function serverOAuthOf(route: Route & { kind: 'remote' | 'hosted' }, oauth: Authorizer | undefined): ServerOAuth | undefined {
  if (oauth === undefined) return undefined;
  const headers = [...Object.keys(route.headers.values), ...route.headers.fromUser.map((f) => f.name), ...Object.keys(route.userHeaders ?? {})];
  if (route.oauth === undefined && headers.some((h) => h.toLowerCase() === 'authorization')) return undefined;
  const target = oauthTargetOf(route);
  if (target === undefined) return undefined;
  return {
    applies: () => oauth.applies(target),
    connection: (user) => ({
      token: () => (user === undefined ? Promise.resolve(undefined) : oauth.tokenFor(user, target)),
      // A hosted server is known by the address of the instance that challenged berth; a remote by its URL.
      challenged: (url, header, sent, retried) => oauth.challenged(user ?? '', target.url === undefined ? { ...target, url } : target, parseBearerChallenge(header) ?? {}, sent, retried),
    }),
  };
}
