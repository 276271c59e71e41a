import { hkdfSync } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';
import { BerthError } from '../errors.ts';

/** One encryption key of the state file, derived from a configured secret. */
export interface StateKey {
  /** Names the key in each JWE header without revealing anything about it. */
  readonly kid: string;
  readonly key: Uint8Array;
}

/** A value as the state file holds it: in the clear, or a JWE compact string. */
export type StoredValue = { readonly plain: string } | { readonly sealed: string };

/** The keys in force: new values are sealed under the first; any of them opens. */
export interface Keyring {
  readonly keys: readonly StateKey[];
}

const SALT = 'berth/state';
const MIN_SECRET_LENGTH = 32;
// Both header values are pinned when opening, so a tampered header cannot pick another algorithm.
const ALG = 'dir';
const ENC = 'A256GCM';
/** A protected-header member binding a sealed value to where it is stored: swapping values between users fails. */
const CONTEXT_HEADER = 'berth-ctx';

/**
 * Derives the keyring from configured secrets (first = current). HKDF-SHA256
 * turns each string of at least 32 characters into a 32-byte AES key; a second
 * HKDF output with another `info` names it, so the key id says nothing about the key.
 */
export function deriveKeyring(secrets: readonly string[]): Keyring {
  return {
    keys: secrets.map((secret, i) => {
      if (secret.length < MIN_SECRET_LENGTH) throw new BerthError('state_key_invalid', `state key ${i + 1} is ${secret.length} characters long; a state key needs at least ${MIN_SECRET_LENGTH}`);
      return {
        kid: Buffer.from(hkdfSync('sha256', secret, SALT, 'berth state key id v1', 9)).toString('base64url'),
        key: new Uint8Array(hkdfSync('sha256', secret, SALT, 'berth state encryption key v1', 32)),
      };
    }),
  };
}

/** Seals `text` under the current key, bound to `context` (e.g. `credentials/alice/github/TOKEN`). */
export async function sealValue(keyring: Keyring, text: string, context: string): Promise<StoredValue> {
  const current = keyring.keys[0];
  if (current === undefined) {
    throw new BerthError('state_key_missing', 'cannot store a secret: no state key is configured; set `state.key` (for example `key: ${env:BERTH_STATE_KEY}`) to at least 32 random characters');
  }
  const sealed = await new CompactEncrypt(new TextEncoder().encode(text))
    .setProtectedHeader({ alg: ALG, enc: ENC, kid: current.kid, [CONTEXT_HEADER]: context })
    .encrypt(current.key);
  return { sealed };
}

/** The clear text of a stored value; sealed values need the key named by their `kid` and the same `context`. */
export async function openValue(keyring: Keyring, stored: StoredValue, context: string): Promise<string> {
  if ('plain' in stored) return stored.plain;
  const { text, context: sealedFor } = await openSealed(keyring, stored.sealed);
  if (sealedFor !== context) throw new BerthError('state_value_invalid', `the state file holds a value for ${context} that was sealed for another place; it was moved or tampered with`);
  return text;
}

/** Re-seals a value under the current key, keeping its context; plain values stay as they are. */
export async function resealValue(keyring: Keyring, stored: StoredValue): Promise<StoredValue> {
  if ('plain' in stored) return stored;
  const { text, context } = await openSealed(keyring, stored.sealed);
  return sealValue(keyring, text, context);
}

/** Why the configured keys cannot open a sealed value (a coded error), or undefined when they can. */
export async function sealedProblem(keyring: Keyring, stored: StoredValue): Promise<BerthError | undefined> {
  if ('plain' in stored) return undefined;
  try {
    await openSealed(keyring, stored.sealed);
    return undefined;
  } catch (err) {
    if (err instanceof BerthError) return err;
    throw err;
  }
}

/** True when a sealed value is already under the current key. */
export function isSealedUnderCurrent(keyring: Keyring, stored: StoredValue): boolean {
  return 'sealed' in stored && headerOf(stored.sealed).kid === keyring.keys[0]?.kid;
}

async function openSealed(keyring: Keyring, sealed: string): Promise<{ readonly text: string; readonly context: string }> {
  const header = headerOf(sealed);
  const key = keyring.keys.find((k) => k.kid === header.kid);
  if (key === undefined) {
    throw new BerthError('state_key_unknown', `a value in the state file was sealed under key ${String(header.kid)}, which is not among the configured state keys${keyring.keys.length === 0 ? ' (none is configured)' : ''}; add the old key to \`state.keys\` after the new one`);
  }
  try {
    const { plaintext } = await compactDecrypt(sealed, key.key, { keyManagementAlgorithms: [ALG], contentEncryptionAlgorithms: [ENC] });
    return { text: new TextDecoder().decode(plaintext), context: String(header[CONTEXT_HEADER]) };
  } catch (err) {
    throw new BerthError('state_value_invalid', `a value in the state file sealed under key ${key.kid} does not decrypt; the file was changed outside berth`, { cause: err });
  }
}

function headerOf(sealed: string): Record<string, unknown> {
  try {
    return decodeProtectedHeader(sealed);
  } catch (err) {
    throw new BerthError('state_value_invalid', 'a sealed value in the state file is not a JWE compact string; the file was changed outside berth', { cause: err });
  }
}
