// Who a caller is: (provider, subject). Two issuers minting the same `sub`
// and an API key of the same name are three people, with their own stored
// credentials, until the operator maps them together with `usernamePrefix`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newApiKey } from '../../src/auth/api-key.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { NOTES_YAML, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { startIssuer } from '../helpers/oidc.ts';
import { waitFor } from '../helpers/wait.ts';

const STATE_KEY = 'an-identity-test-state-key-of-32-characters';
const SERVERS = NOTES_YAML;

describe('identity is (provider, subject)', () => {
  let a: TestIssuer;
  let b: TestIssuer;
  let t: TestBerth;
  const apiKey = newApiKey();
  const head = (prefix: string): string =>
    `state: { key: ${JSON.stringify(STATE_KEY)} }\nauth:\n` +
    `  - { type: jwt, issuer: ${JSON.stringify(a.issuer)}${prefix} }\n` +
    `  - { type: jwt, issuer: ${JSON.stringify(b.issuer)}${prefix} }\n` +
    `  - { type: apiKey, keys: [{ user: agent, sha256: ${JSON.stringify(apiKey.sha256)} }] }\n`;

  before(async () => {
    [a, b] = await Promise.all([startIssuer(), startIssuer()]);
    t = await startTestBerth(SERVERS, head(''));
  });
  after(async () => {
    await t?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  // Both issuers' client-credentials tokens name the same subject: the client id `agent`.
  const as = async (who: TestIssuer | 'key'): Promise<Record<string, string>> => (who === 'key' ? { 'x-api-key': apiKey.key } : { authorization: `Bearer ${await who.token(t.url)}` });
  const saved = async (who: TestIssuer | 'key'): Promise<unknown> => {
    const res = await fetch(`${t.url}/api/credentials`, { headers: await as(who) });
    assert.equal(res.status, 200);
    return ((await res.json()) as { servers: unknown }).servers;
  };
  const save = async (who: TestIssuer, value: string): Promise<void> => {
    const res = await fetch(`${t.url}/api/credentials/notes`, { method: 'PUT', headers: { ...(await as(who)), 'content-type': 'application/json' }, body: JSON.stringify({ NOTES_TOKEN: value }) });
    assert.equal(res.status, 200, await res.text());
  };

  test('the same sub from two issuers and an API key user of that name do not share credentials', async () => {
    await save(a, 'secret-of-a');
    assert.deepEqual(await saved(a), { notes: ['NOTES_TOKEN'] });
    assert.deepEqual(await saved(b), {}, 'issuer B\'s agent sees nothing of issuer A\'s');
    assert.deepEqual(await saved('key'), {}, 'the API key user agent sees nothing either');
    const state = JSON.parse(readFileSync(path.join(t.dir, '.berth/state.json'), 'utf8')) as { credentials: Record<string, unknown>; installation?: { labelSecret?: string } };
    assert.deepEqual(Object.keys(state.credentials), [`jwt:${a.issuer}#agent`]);
    assert.ok((state.installation?.labelSecret ?? '').length >= 32, 'the installation keeps a secret for user labels');
  });

  test('a usernamePrefix shared by two providers makes their equal names one person, on purpose', async () => {
    t.writeConfig(SERVERS, head(', usernamePrefix: "corp:"'));
    await waitFor(async () => {
      await save(a, 'shared-secret');
      return JSON.stringify(await saved(b)) === JSON.stringify({ notes: ['NOTES_TOKEN'] });
    }, { timeoutMs: 10_000, message: 'issuer B\'s agent to see what issuer A\'s saved under the shared prefix' });
    assert.deepEqual(await saved('key'), {}, 'the API key provider has no prefix: still its own agent');
  });
});
