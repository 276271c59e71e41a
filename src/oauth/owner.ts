import type { Identity } from '../identity.ts';
import { identityKey } from '../identity.ts';

/** Whose token a caller uses: the one place that says how an identity keys tokens. */
export function ownerOf(identity: Identity): string {
  return identityKey(identity);
}

/** The owner of a server's one token when `perUser: false`: not a key any identity can have. */
export const SHARED_OWNER = '\u0000shared';
