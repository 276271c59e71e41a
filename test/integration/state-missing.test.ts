// The state file removed while berth serves: an alarm (log, /status, every
// change refused), never an empty state that the next save would write over
// everyone's credentials. Once the file is back, changes go through again.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { sha256Hex } from '../../src/auth/api-key.ts';
import { createLogger } from '../../src/observe/log.ts';
import { NOTES_YAML, startTestBerth } from '../helpers/berth.ts';

const KEY = 'berth_alice-state-0123456789abcdefgh';
const SERVERS = NOTES_YAML;

test('a state file removed while serving refuses changes, shows on /status and is logged; restored, it takes them again', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const b = await startTestBerth(SERVERS, `state: { key: "a-state-missing-test-key-of-32-characters" }\nauth:\n  - type: apiKey\n    keys: [{ user: alice, groups: [admin], sha256: "${sha256Hex(KEY)}" }]\n`, { logger: createLogger({ level: 'info', destination: sink }) });
  const as = { 'x-api-key': KEY };
  const file = path.join(b.dir, '.berth/state.json');
  const put = (value: string): Promise<Response> => fetch(`${b.url}/api/credentials/notes`, { method: 'PUT', headers: { ...as, 'content-type': 'application/json' }, body: JSON.stringify({ NOTES_TOKEN: value }) });
  try {
    assert.equal((await put('first')).status, 200);
    copyFileSync(file, `${file}.backup`);
    rmSync(file);

    const refused = await put('second');
    assert.equal(refused.status, 500);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'state_missing');
    assert.ok(!existsSync(file), 'berth did not write a new, nearly empty state file');
    const status = (await (await fetch(`${b.url}/status`, { headers: as })).json()) as { stateFile?: { problem: string } };
    assert.match(status.stateFile?.problem ?? '', /was removed while berth was serving/);
    assert.ok(lines.some((l) => l.includes('state file removed while serving')), 'logged');
    const listed = (await (await fetch(`${b.url}/api/credentials`, { headers: as })).json()) as { servers: unknown };
    assert.deepEqual(listed.servers, { notes: ['NOTES_TOKEN'] }, 'what was read is still served');

    copyFileSync(`${file}.backup`, file);
    assert.equal((await put('third')).status, 200);
    assert.equal(((await (await fetch(`${b.url}/status`, { headers: as })).json()) as { stateFile?: unknown }).stateFile, undefined);
    assert.ok(readFileSync(file, 'utf8').includes('installation'), 'the restored file kept the rest of the state');
  } finally {
    await b.stop();
  }
});
