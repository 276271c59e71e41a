import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { apiKeyProvider, newApiKey } from '../../src/auth/api-key.ts';
import { createAuthenticator } from '../../src/auth/chain.ts';
import { headerProvider } from '../../src/auth/header.ts';
import type { Verdict } from '../../src/auth/provider.ts';
import { hashUser } from '../../src/desired/hash.ts';
import { identityKey } from '../../src/identity.ts';
import { silentLogger } from '../../src/observe/log.ts';

const keyOf = (verdict: Verdict): string | undefined => (verdict.kind === 'identity' ? identityKey(verdict.identity) : undefined);

test('each provider keys its users in its own namespace unless a usernamePrefix maps them', async () => {
  const { key, sha256 } = newApiKey();
  const request = (headers: Record<string, string>) => ({ headers, remoteAddress: '127.0.0.1', audiences: [] });
  assert.equal(keyOf(await apiKeyProvider([{ user: 'alice', sha256 }]).verify(request({ 'x-api-key': key }))), 'apiKey:alice');
  assert.equal(keyOf(await apiKeyProvider([{ user: 'alice', sha256 }], '').verify(request({ 'x-api-key': key }))), 'alice');
  assert.equal(keyOf(await headerProvider({}).verify(request({ 'x-forwarded-user': 'alice' }))), 'header:x-forwarded-user:alice');
  assert.equal(keyOf(await headerProvider({ userHeader: 'X-Email', usernamePrefix: 'corp:' }).verify(request({ 'x-email': 'alice' }))), 'corp:alice');
});

test('user labels are keyed with the installation\'s secret: not a plain hash of the name', () => {
  const plain = createHash('sha256').update('berth-user:apiKey:alice').digest('hex').slice(0, 16);
  const label = hashUser('apiKey:alice', 'secret-one');
  assert.match(label, /^[0-9a-f]{16}$/);
  assert.notEqual(label, plain);
  assert.notEqual(label, hashUser('apiKey:alice', 'secret-two'));
  assert.equal(label, hashUser('apiKey:alice', 'secret-one'));
});

test('a key unknown to one apiKey provider is asked of the next, and refused only when none knows it', async () => {
  const team = newApiKey();
  const ci = newApiKey();
  const authenticator = createAuthenticator(
    [
      { type: 'apiKey', keys: [{ user: 'alice', sha256: team.sha256 }] },
      { type: 'header', userHeader: 'X-Email' },
      { type: 'apiKey', usernamePrefix: 'ci:', keys: [{ user: 'runner', sha256: ci.sha256 }] },
    ],
    { logger: silentLogger() },
  );
  const verdict = (key: string) => authenticator.authenticate({ headers: { 'x-api-key': key }, remoteAddress: '127.0.0.1', audiences: [] });
  assert.equal(keyOf(await verdict(team.key)), 'apiKey:alice');
  assert.equal(keyOf(await verdict(ci.key)), 'ci:runner');
  assert.deepEqual(await verdict(newApiKey().key), { kind: 'invalid', reason: 'unknown API key' });
});
