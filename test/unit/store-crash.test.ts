// Crash safety of the state file: a real child process writes in a loop and is
// SIGKILLed at arbitrary moments; the file must still parse and hold the last
// completed write. Rounds where a temp file was left behind prove the kill
// landed mid-write.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/observe/log.ts';
import { CredentialStore } from '../../src/store/credentials.ts';
import { StateStore } from '../../src/store/state.ts';
import { waitFor } from '../helpers/wait.ts';

const WRITER = fileURLToPath(new URL('../fixtures/children/state-writer.ts', import.meta.url));
const KEY = 'a-crash-test-state-key-of-32-characters-or-more';
const ROUNDS = 6;

const dir = mkdtempSync(path.join(tmpdir(), 'berth-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it(`survives SIGKILL mid-write (${ROUNDS} rounds): the file parses and holds the last completed write`, async (t) => {
  const file = path.join(dir, 'state.json');
  let midWrite = 0;
  let previous = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const child = spawn(process.execPath, [WRITER, file, KEY], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    let last = 0;
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) last = Number(line);
    });
    // A different number of completed writes each round; odd rounds then also wait until a temp file exists.
    const target = previous + 2 + ((round * 7) % 9);
    const inWrite = (): boolean => round % 2 === 0 || readdirSync(dir).some((name) => name.endsWith('.tmp'));
    await waitFor(() => last >= target && inWrite(), { timeoutMs: 30_000, intervalMs: 1, message: `${target} completed writes` });
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    const temps = readdirSync(dir).filter((name) => name.endsWith('.tmp'));
    if (temps.length > 0) midWrite++;

    const store = new CredentialStore(await StateStore.open({ path: file, keys: [KEY] }), silentLogger());
    const counter = Number((await store.get('alice', 'github'))['COUNTER']);
    // The write after `last` may have completed its rename before the child could print it.
    assert.ok(counter === last || counter === last + 1, `round ${round}: file holds ${counter}, last completed write was ${last}`);
    assert.ok(counter > previous, 'each round continues from what the file held');
    previous = counter;
    assert.deepEqual(readdirSync(dir).filter((name) => name.endsWith('.tmp')), [], 'opening removes temp files of dead writers');
  }
  assert.ok(existsSync(file));
  t.diagnostic(`kills that landed mid-write (temp file left): ${midWrite} of ${ROUNDS}`);
});
