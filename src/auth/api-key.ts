import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { ApiKey } from '../config/types.gen.ts';
import type { Identity } from '../identity.ts';
import { keyOf } from '../identity.ts';
import type { Provider, Verdict } from './provider.ts';
import { bearerToken, PASS } from './provider.ts';

/** Keys berth makes start with this, so a mistyped one is refused as a key and not tried as a JWT. */
const KEY_PREFIX = 'berth_';

export function sha256Hex(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new random key and its hash, the only part the config holds. */
export function newApiKey(): { key: string; sha256: string } {
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  return { key, sha256: sha256Hex(key) };
}

/**
 * Static API keys, from `X-API-Key` or `Authorization: Bearer`. Only hashes
 * are held; every presented key is compared with every hash in constant time,
 * so timing tells nothing about which key came close.
 */
export function apiKeyProvider(keys: readonly ApiKey[], usernamePrefix?: string): Provider {
  const entries = keys.map((k) => ({
    hash: Buffer.from(k.sha256 ?? sha256Hex(k.key ?? ''), 'hex'),
    identity: Object.freeze({ user: k.user, key: keyOf('apiKey:', k.user, usernamePrefix), groups: Object.freeze([...(k.groups ?? [])]), scopes: [], provider: 'apiKey' }) satisfies Identity,
  }));
  return {
    type: 'apiKey',
    verify(request): Verdict {
      const header = request.headers['x-api-key'];
      const explicit = typeof header === 'string' && header !== '' ? header : undefined;
      const key = explicit ?? bearerToken(request.headers);
      if (key === undefined) return PASS;
      const presented = createHash('sha256').update(key, 'utf8').digest();
      let found: Identity | undefined;
      for (const entry of entries) {
        if (timingSafeEqual(entry.hash, presented) && found === undefined) found = entry.identity;
      }
      if (found !== undefined) return { kind: 'identity', identity: found };
      // A bearer token that is not one of ours may be a JWT for the next provider.
      return explicit !== undefined || key.startsWith(KEY_PREFIX) ? { kind: 'invalid', reason: 'unknown API key' } : PASS;
    },
    // A key of the same user with the same groups is left: the user's sessions stay.
    vouches: (identity) => entries.some((e) => e.identity.key === identity.key && isDeepStrictEqual([...e.identity.groups].sort(), [...identity.groups].sort())),
  };
}
