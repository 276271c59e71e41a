// A wrong or rotated state key is found at start: no value opens, berth does
// not start and says why; some values do not open, berth starts and names
// them (log, /status), and their user is told which value to enter again.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sha256Hex } from '../../src/auth/api-key.ts';
import type { BerthError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { CredentialStore } from '../../src/store/credentials.ts';
import { StateStore } from '../../src/store/state.ts';
import { connectClient, NOTES_YAML, startTestBerth } from '../helpers/berth.ts';

const OLD = 'the-old-state-key-of-at-least-32-characters';
const NEW = 'the-new-state-key-of-at-least-32-characters';
const KEYS = { alice: 'berth_alice-keys-0123456789abcdefgh', bob: 'berth_bob-keys-0123456789abcdefghij' };
const SERVERS = NOTES_YAML;
const head = (file: string): string =>
  `state: { path: ${JSON.stringify(file)}, key: "${NEW}" }\nauth:\n  - type: apiKey\n    keys:\n      - { user: alice, groups: [admin], sha256: "${sha256Hex(KEYS.alice)}" }\n      - { user: bob, sha256: "${sha256Hex(KEYS.bob)}" }\n`;

async function seal(file: string, key: string, user: string, value: string): Promise<void> {
  await new CredentialStore(await StateStore.open({ path: file, keys: [key] }), silentLogger()).set(user, 'notes', { NOTES_TOKEN: { value, sensitive: true } });
}

describe('state keys checked at start', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'berth-state-keys-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a key that opens none of the secrets stops berth, naming a value and the remedy', async () => {
    const file = path.join(dir, 'wrong.json');
    await seal(file, OLD, 'apiKey:alice', 'a');
    await seal(file, OLD, 'apiKey:bob', 'b');
    const started = await startTestBerth(SERVERS, head(file)).catch((err: unknown) => err as BerthError);
    if (!(started instanceof Error)) {
      await started.stop();
      assert.fail('berth started with a state key that opens none of the secrets');
    }
    assert.equal(started.code, 'state_key_wrong');
    assert.match(started.message, /none of the 2 secrets/);
    assert.match(started.message, /credentials\/apiKey:(alice|bob)\/notes\/NOTES_TOKEN/);
    assert.match(started.message, /state\.keys/);
  });

  test('a value under a key no longer configured is named in /status and to its user', async () => {
    const file = path.join(dir, 'partial.json');
    await seal(file, NEW, 'apiKey:alice', 'a');
    await seal(file, OLD, 'apiKey:bob', 'b');
    const b = await startTestBerth(SERVERS, head(file));
    try {
      const status = (await (await fetch(`${b.url}/status`, { headers: { 'x-api-key': KEYS.alice } })).json()) as { stateFile?: { unreadable?: string[] } };
      assert.deepEqual(status.stateFile?.unreadable, ['credentials/apiKey:bob/notes/NOTES_TOKEN']);
      await assert.rejects(connectClient(b.url, 'notes', {}, { 'x-api-key': KEYS.bob }), (err: Error) => {
        assert.match(err.message, /saved NOTES_TOKEN for notes cannot be read/);
        assert.match(err.message, /\/connect\/notes/);
        return true;
      });
    } finally {
      await b.stop();
    }
  });
});
