import type { DesiredState, Route, UserCredential } from '../desired/types.ts';

/**
 * The values users supply for a server: its instances' `fromUser` environment,
 * its `fromUser` headers and its `credentials`. Undefined for a server the config does not have.
 */
export function userFieldsOf(desired: DesiredState, server: string): readonly UserCredential[] | undefined {
  const route = desired.routes.find((r) => r.server === server);
  if (route === undefined) return undefined;
  switch (route.kind) {
    case 'composite':
      return [];
    case 'remote':
      return headerFieldsOf(route);
    case 'hosted': {
      const env = desired.units.find((u) => u.name === route.unit)?.spec.env.fromUser ?? [];
      return [...env, ...headerFieldsOf(route)];
    }
  }
}

/** The values users supply that a route sends as headers: its `fromUser` headers and its `credentials`. */
export function headerFieldsOf(route: Route & { kind: 'hosted' | 'remote' }): readonly UserCredential[] {
  return [...route.headers.fromUser, ...(route.credentials ?? [])].map((f) => ({ ...f, header: true }));
}
