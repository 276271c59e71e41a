import { createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

// The private key of a private_key_jwt client (oauth.privateKey): read once by
// validation, which reports a key that cannot sign, and again by the OAuth
// client, which signs with it. Pure: text in, a key or the reason out.

export type ClientKeyAlg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

export interface ClientKeySettings {
  readonly key: string;
  readonly kid?: string;
  /** Checked against the key: the schema only knows the names. */
  readonly alg?: string;
}

export type ClientKey = { readonly ok: true; readonly key: KeyObject; readonly alg: ClientKeyAlg; readonly kid?: string } | { readonly ok: false; readonly field: 'key' | 'alg'; readonly problem: string };

/** The algorithms each kind of key signs with; the first is the default. */
const ALGS_BY_TYPE: Readonly<Record<string, readonly ClientKeyAlg[]>> = {
  rsa: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  'rsa-pss': ['PS256', 'PS384', 'PS512'],
  'ec:prime256v1': ['ES256'],
  'ec:secp384r1': ['ES384'],
  'ec:secp521r1': ['ES512'],
  ed25519: ['EdDSA'],
};

/** Reads a PEM or JWK private key and settles its `alg` and `kid`; a public key, another kind or a mismatched `alg` is a problem. */
export function readClientKey(settings: ClientKeySettings): ClientKey {
  const text = settings.key.trim();
  let jwk: { kid?: unknown; alg?: unknown } | undefined;
  let key: KeyObject;
  try {
    if (text.startsWith('{')) {
      jwk = JSON.parse(text) as { kid?: unknown; alg?: unknown };
      key = createPrivateKey({ key: jwk as never, format: 'jwk' });
    } else {
      key = createPrivateKey(text);
    }
  } catch {
    return { ok: false, field: 'key', problem: 'is not a private key: write it as PEM (-----BEGIN PRIVATE KEY-----) or as a JWK with its private part ("d")' };
  }
  const type = key.asymmetricKeyType === 'ec' ? `ec:${key.asymmetricKeyDetails?.namedCurve ?? ''}` : (key.asymmetricKeyType ?? '');
  const algs = ALGS_BY_TYPE[type];
  if (algs === undefined) return { ok: false, field: 'key', problem: `is a ${type.replace('ec:', 'EC ')} key; berth signs with RSA, EC (P-256, P-384, P-521) or Ed25519 keys` };
  const alg = settings.alg ?? (typeof jwk?.alg === 'string' ? jwk.alg : algs[0]!);
  if (!isAlgOf(algs, alg)) return { ok: false, field: 'alg', problem: `is a ${type.replace('ec:', 'EC ')} key, which cannot sign ${alg} (it signs ${algs.join(', ')})` };
  const kid = settings.kid ?? (typeof jwk?.kid === 'string' ? jwk.kid : undefined);
  return { ok: true, key, alg, ...(kid === undefined ? {} : { kid }) };
}

function isAlgOf(algs: readonly ClientKeyAlg[], alg: string): alg is ClientKeyAlg {
  return (algs as readonly string[]).includes(alg);
}
