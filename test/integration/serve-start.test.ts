// berth answers no request before its first route table is in: from the
// first answer on, a configured server's protected-resource metadata is
// there, and an unknown server is 404 before any challenge.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { startBerth } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { configText, freePort } from '../helpers/berth.ts';

const AUTH = 'auth:\n  - type: apiKey\n    keys:\n      - { user: alice, key: "k-alice-0123456789" }\n';
const SERVERS = '  docs:\n    type: remote\n    url: http://127.0.0.1:9/mcp\n';

describe('berth start', () => {
  test('from the first request berth answers, metadata of a configured server is found, and an unknown server is 404 without a challenge', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-start-'));
    const file = path.join(dir, 'berth.yaml');
    writeFileSync(file, configText(SERVERS, AUTH));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const starting = startBerth(file, { port }, silentLogger());
    starting.catch(() => undefined);
    const answers: string[] = [];
    let started = false;
    void starting.then(() => (started = true), () => (started = true));
    try {
      // Bounded in time and count: asks until berth has answered a few times after it started.
      const deadline = Date.now() + 30_000;
      let afterStart = 0;
      for (let round = 0; round < 10_000 && afterStart < 5 && Date.now() < deadline; round++) {
        if (started) afterStart++;
        const metadata = await fetch(`${base}/.well-known/oauth-protected-resource/mcp/docs`).catch(() => undefined);
        if (metadata === undefined) {
          // Not listening yet: nothing was answered. Ask again shortly.
          await new Promise((resolve) => setTimeout(resolve, 2));
          continue;
        }
        answers.push(`metadata ${metadata.status}`);
        const unknown = await fetch(`${base}/mcp/nope`, { method: 'POST' });
        answers.push(`unknown ${unknown.status} ${unknown.headers.get('www-authenticate') ?? 'no challenge'}`);
      }
      await starting;
      assert.ok(answers.length > 0, 'berth answered');
      assert.deepEqual([...new Set(answers)], ['metadata 200', 'unknown 404 no challenge']);
    } finally {
      await (await starting).stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
