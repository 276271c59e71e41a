// `berth state rotate-key` as users run it: a real process on a real config
// whose keys come from ${env:…}, against a state file written under the old key.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { silentLogger } from '../../src/observe/log.ts';
import { CredentialStore } from '../../src/store/credentials.ts';
import { deriveKeyring } from '../../src/store/seal.ts';
import { StateStore } from '../../src/store/state.ts';
import type { CliResult } from '../helpers/cli.ts';
import { runBerth } from '../helpers/cli.ts';

const OLD = 'the-old-state-key-of-at-least-32-characters';
const NEW = 'the-new-state-key-of-at-least-32-characters';

const dir = mkdtempSync(path.join(tmpdir(), 'berth-rotate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function berth(args: readonly string[], env: Record<string, string>): Promise<CliResult> {
  return runBerth(args, { cwd: dir, env });
}

it('re-encrypts the state file under the first key; with no key it says what to set', async () => {
  const state = path.join(dir, 'data', 'state.json');
  const old = new CredentialStore(await StateStore.open({ path: state, keys: [OLD] }), silentLogger());
  await old.set('alice', 'github', { TOKEN: { value: 'alices-token', sensitive: true }, ORG: { value: 'acme', sensitive: false } });
  await old.set('bob', 'github', { TOKEN: { value: 'bobs-token', sensitive: true } });

  writeFileSync(path.join(dir, 'berth.yaml'), 'version: 1\nstate:\n  path: data/state.json\n  keys: ["${env:KEY_NEW}", "${env:KEY_OLD}"]\nservers: {}\n');
  const rotated = await berth(['state', 'rotate-key'], { BERTH_CONFIG: 'berth.yaml', KEY_NEW: NEW, KEY_OLD: OLD });
  assert.equal(rotated.code, 0, rotated.stderr);
  const kid = deriveKeyring([NEW]).keys[0]?.kid ?? '';
  assert.equal(rotated.stdout, `${state}: re-encrypted 2 values under key ${kid} (0 already were)\n`);
  const kids = [...readFileSync(state, 'utf8').matchAll(/"sealed": "([^"]+)"/g)].map((m) => decodeProtectedHeader(m[1] ?? '').kid);
  assert.deepEqual(kids, [kid, kid]);
  const fresh = new CredentialStore(await StateStore.open({ path: state, keys: [NEW] }), silentLogger());
  assert.deepEqual(await fresh.get('alice', 'github'), { TOKEN: 'alices-token', ORG: 'acme' });

  writeFileSync(path.join(dir, 'nokey.yaml'), 'version: 1\nstate: { path: data/state.json }\nservers: {}\n');
  const refused = await berth(['state', 'rotate-key', 'nokey.yaml'], {});
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^berth: nokey\.yaml: no state key is configured; set `state\.keys`/);
  assert.doesNotMatch(refused.stderr, /^\s+at /m);

  writeFileSync(path.join(dir, 'wrongkey.yaml'), 'version: 1\nstate: { path: data/state.json, key: "${env:KEY_OTHER}" }\nservers: {}\n');
  const unknown = await berth(['state', 'rotate-key', 'wrongkey.yaml'], { KEY_OTHER: 'some-unrelated-key-of-at-least-32-characters' });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, new RegExp(`^berth: a value in the state file was sealed under key ${kid}, which is not among the configured state keys`));
});
