// The state file and the credential store against real files in a temp dir:
// sealing, key rotation, users kept apart, change events and no secret in logs.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { BerthError } from '../../src/errors.ts';
import { createLogger, silentLogger } from '../../src/observe/log.ts';
import type { CredentialChange } from '../../src/store/credentials.ts';
import { CredentialStore } from '../../src/store/credentials.ts';
import { rotateStateKey } from '../../src/store/rotate.ts';
import { deriveKeyring, openValue, sealValue } from '../../src/store/seal.ts';
import { StateStore } from '../../src/store/state.ts';

const KEY_A = 'a-first-state-key-of-at-least-32-characters';
const KEY_B = 'b-second-state-key-of-at-least-32-characters';
const SECRET = 'ghp_s3cr3t-value-that-must-never-leak';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function stateFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-store-'));
  dirs.push(dir);
  return path.join(dir, 'nested', 'state.json');
}

async function openStore(file: string, keys: readonly string[], logger = silentLogger()): Promise<CredentialStore> {
  return new CredentialStore(await StateStore.open({ path: file, keys }), logger);
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof BerthError && err.code === code);
}

describe('sealing', () => {
  it('derives a 32-byte key and a key id deterministically, a different one per secret', () => {
    const [a1] = deriveKeyring([KEY_A]).keys;
    const [a2, b] = deriveKeyring([KEY_A, KEY_B]).keys;
    assert.equal(a1?.key.length, 32);
    assert.deepEqual(a1, a2);
    assert.notEqual(a1?.kid, b?.kid);
    assert.ok(!a1?.kid.includes(KEY_A.slice(0, 8)));
  });

  it('refuses a secret shorter than 32 characters', () => {
    assert.throws(() => deriveKeyring(['too-short']), (err: unknown) => err instanceof BerthError && err.code === 'state_key_invalid');
  });

  it('seals as JWE compact with dir + A256GCM and the key id; any configured key opens it', async () => {
    const sealed = await sealValue(deriveKeyring([KEY_A]), SECRET, 'ctx');
    assert.ok('sealed' in sealed);
    assert.equal(sealed.sealed.split('.').length, 5);
    assert.equal(sealed.sealed.split('.')[1], '', 'dir has an empty encrypted key');
    const header = decodeProtectedHeader(sealed.sealed);
    assert.equal(header.alg, 'dir');
    assert.equal(header.enc, 'A256GCM');
    assert.equal(header.kid, deriveKeyring([KEY_A]).keys[0]?.kid);
    assert.equal(await openValue(deriveKeyring([KEY_B, KEY_A]), sealed, 'ctx'), SECRET);
  });

  it('refuses a value sealed under an unknown key, for another place, or tampered with', async () => {
    const sealed = await sealValue(deriveKeyring([KEY_A]), SECRET, 'credentials/alice/gh/T');
    await rejectsWithCode(openValue(deriveKeyring([KEY_B]), sealed, 'credentials/alice/gh/T'), 'state_key_unknown');
    await rejectsWithCode(openValue(deriveKeyring([KEY_A]), sealed, 'credentials/bob/gh/T'), 'state_value_invalid');
    assert.ok('sealed' in sealed);
    const parts = sealed.sealed.split('.');
    const ciphertext = parts[3] ?? '';
    parts[3] = `${ciphertext.slice(0, -2)}${ciphertext.endsWith('AA') ? 'BB' : 'AA'}`;
    await rejectsWithCode(openValue(deriveKeyring([KEY_A]), { sealed: parts.join('.') }, 'credentials/alice/gh/T'), 'state_value_invalid');
    await rejectsWithCode(sealValue(deriveKeyring([]), SECRET, 'x'), 'state_key_missing');
  });
});

describe('credential store', () => {
  it('keeps users apart; lists names only; stores sensitive values sealed and plain ones in the clear', async () => {
    const file = stateFile();
    const store = await openStore(file, [KEY_A]);
    await store.set('alice', 'github', { TOKEN: { value: SECRET, sensitive: true }, ORG: { value: 'acme', sensitive: false } });
    await store.set('bob', 'github', { TOKEN: { value: 'bobs-token', sensitive: true } });
    assert.deepEqual(await store.get('alice', 'github'), { TOKEN: SECRET, ORG: 'acme' });
    assert.deepEqual(await store.get('bob', 'github'), { TOKEN: 'bobs-token' });
    assert.deepEqual(await store.get('carol', 'github'), {});
    assert.deepEqual(store.list('alice'), { github: ['ORG', 'TOKEN'] });
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(SECRET) && !text.includes('bobs-token'), 'secrets are not in the file in the clear');
    assert.ok(text.includes('"plain": "acme"'));
    // A fresh process reads the same.
    const again = await openStore(file, [KEY_A]);
    assert.deepEqual(await again.get('alice', 'github'), { TOKEN: SECRET, ORG: 'acme' });
  });

  it('deletes one value or a whole server, and says whether something was there', async () => {
    const store = await openStore(stateFile(), [KEY_A]);
    await store.set('alice', 'github', { TOKEN: { value: SECRET, sensitive: true }, ORG: { value: 'acme', sensitive: false } });
    assert.equal(await store.delete('alice', 'github', 'ORG'), true);
    assert.equal(await store.delete('alice', 'github', 'ORG'), false);
    assert.deepEqual(store.list('alice'), { github: ['TOKEN'] });
    assert.equal(await store.delete('alice', 'github'), true);
    assert.deepEqual(store.list('alice'), {});
    assert.equal(await store.delete('alice', 'github'), false);
  });

  it('treats user and field names like __proto__ as plain names', async () => {
    const store = await openStore(stateFile(), [KEY_A]);
    await store.set('__proto__', 'github', Object.defineProperty({}, '__proto__', { value: { value: SECRET, sensitive: true }, enumerable: true }));
    assert.deepEqual(Object.keys(store.list('__proto__')), ['github']);
    assert.equal((await store.get('__proto__', 'github'))['__proto__'], SECRET);
    assert.deepEqual(store.list('alice'), {});
  });

  it('without a key: refuses to store a secret, leaves the file alone, and still reads plain values', async () => {
    const file = stateFile();
    const store = await openStore(file, []);
    await store.set('alice', 'notes', { ORG: { value: 'acme', sensitive: false } });
    const before = readFileSync(file, 'utf8');
    await assert.rejects(store.set('alice', 'notes', { TOKEN: { value: SECRET, sensitive: true }, ORG: { value: 'other', sensitive: false } }), (err: unknown) => {
      assert.ok(err instanceof BerthError && err.code === 'state_key_missing');
      assert.match(err.message, /state\.key/);
      return true;
    });
    assert.equal(readFileSync(file, 'utf8'), before);
    assert.deepEqual(await store.get('alice', 'notes'), { ORG: 'acme' });
  });

  it('tells listeners about real changes after they are on disk, and only then', async () => {
    const file = stateFile();
    const store = await openStore(file, [KEY_A]);
    const changes: CredentialChange[] = [];
    const onDisk: boolean[] = [];
    const stop = store.onChange((change) => {
      onDisk.push(readFileSync(file, 'utf8').includes('"TOKEN"'));
      changes.push(change);
    });
    await store.set('alice', 'github', { TOKEN: { value: SECRET, sensitive: true } });
    await store.set('alice', 'github', { TOKEN: { value: SECRET, sensitive: true } });
    await store.set('alice', 'github', { TOKEN: { value: 'rotated', sensitive: true } });
    await store.delete('alice', 'github', 'NOT_THERE');
    await store.delete('alice', 'github');
    stop();
    await store.set('alice', 'github', { TOKEN: { value: 'unheard', sensitive: true } });
    assert.deepEqual(changes, [
      { user: 'alice', server: 'github', names: ['TOKEN'] },
      { user: 'alice', server: 'github', names: ['TOKEN'] },
      { user: 'alice', server: 'github', names: ['TOKEN'] },
    ]);
    assert.deepEqual(onDisk, [true, true, false], 'each change is on disk when listeners hear of it');
  });

  it('serialises concurrent changes without losing any', async () => {
    const store = await openStore(stateFile(), [KEY_A]);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.set('alice', `s${i}`, { TOKEN: { value: `v${i}`, sensitive: i % 2 === 0 } })));
    assert.equal(Object.keys(store.list('alice')).length, 20);
    assert.deepEqual(await store.get('alice', 's7'), { TOKEN: 'v7' });
  });

  it('reports a corrupt state file clearly instead of starting empty', async () => {
    const file = stateFile();
    await openStore(file, [KEY_A]).then((s) => s.set('alice', 'x', { A: { value: '1', sensitive: false } }));
    writeFileSync(file, '{"version": 1, "credentials": {');
    await rejectsWithCode(openStore(file, [KEY_A]), 'state_unreadable');
    writeFileSync(file, '{"version": 7}');
    await rejectsWithCode(openStore(file, [KEY_A]), 'state_unreadable');
  });

  it('never logs a value: names and users only', async () => {
    let output = '';
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        output += chunk.toString('utf8');
        done();
      },
    });
    const logger = createLogger({ level: 'trace', destination });
    const store = await openStore(stateFile(), [KEY_A], logger);
    await store.set('alice', 'github', { TOKEN: { value: SECRET, sensitive: true }, ORG: { value: 'plain-but-private', sensitive: false } });
    await store.get('alice', 'github');
    await store.set('alice', 'github', { TOKEN: { value: `${SECRET}-2`, sensitive: true } });
    await store.delete('alice', 'github');
    assert.match(output, /credentials saved/);
    assert.match(output, /"TOKEN"/);
    assert.ok(!output.includes(SECRET), 'a secret reached the log');
    assert.ok(!output.includes('plain-but-private'), 'a value reached the log');
  });
});

describe('key rotation', () => {
  it('re-seals every secret under the new first key; the old key can then go', async () => {
    const file = stateFile();
    const old = await openStore(file, [KEY_A]);
    await old.set('alice', 'github', { TOKEN: { value: SECRET, sensitive: true }, ORG: { value: 'acme', sensitive: false } });
    await old.set('bob', 'linear', { KEY: { value: 'bobs-key', sensitive: true } });
    const both = await StateStore.open({ path: file, keys: [KEY_B, KEY_A] });
    // New writes already use the first key, before any rotation.
    await new CredentialStore(both, silentLogger()).set('carol', 'github', { TOKEN: { value: 'carols', sensitive: true } });
    assert.deepEqual(await rotateStateKey(both), { resealed: 2, current: 1 });
    assert.deepEqual(await rotateStateKey(both), { resealed: 0, current: 3 });
    const kidB = deriveKeyring([KEY_B]).keys[0]?.kid;
    const kids = [...readFileSync(file, 'utf8').matchAll(/"sealed": "([^"]+)"/g)].map((m) => decodeProtectedHeader(m[1] ?? '').kid);
    assert.deepEqual(kids, [kidB, kidB, kidB]);
    const onlyNew = await openStore(file, [KEY_B]);
    assert.deepEqual(await onlyNew.get('alice', 'github'), { TOKEN: SECRET, ORG: 'acme' });
    assert.deepEqual(await onlyNew.get('bob', 'linear'), { KEY: 'bobs-key' });
  });

  it('fails as a whole when a value is under a key that is not configured', async () => {
    const file = stateFile();
    await openStore(file, [KEY_A]).then((s) => s.set('alice', 'github', { TOKEN: { value: SECRET, sensitive: true } }));
    const before = readFileSync(file, 'utf8');
    await rejectsWithCode(StateStore.open({ path: file, keys: [KEY_B] }).then(rotateStateKey), 'state_key_unknown');
    assert.equal(readFileSync(file, 'utf8'), before);
  });
});
