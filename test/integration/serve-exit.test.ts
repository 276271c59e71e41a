// `berth serve` on a port that is taken exits 1 with a clear message, on
// every backend: nothing it opened (a daemon's event stream) keeps it alive.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot } from '../helpers/berth.ts';
import { dockerUnavailable, removeOwned, testOwner } from '../helpers/docker.ts';

const BIN = path.join(repoRoot, 'bin/berth.js');
const unavailable = dockerUnavailable();

/** Runs `berth serve FILE`; resolves with its exit code and stderr, or with `code: 'running'` when it has not exited by the deadline. */
function serve(file: string, deadlineMs: number): Promise<{ code: number | null | 'running'; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: 'running', stderr });
    }, deadlineMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('berth serve on a taken port', () => {
  const owner = testOwner();
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-exit-'));
  const taken = createServer();
  before(() => new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve)));
  after(async () => {
    taken.close();
    rmSync(dir, { recursive: true, force: true });
    if (unavailable === undefined) await removeOwned(owner);
  });

  for (const backend of ['local', 'docker'] as const) {
    test(`exits 1 saying so, on the ${backend} backend`, { ...(backend === 'docker' && unavailable !== undefined ? { skip: unavailable } : {}) }, async () => {
      const port = (taken.address() as AddressInfo).port;
      const file = path.join(dir, `${backend}.yaml`);
      const backendSection = backend === 'docker' ? `backend:\n  type: docker\n  owner: ${owner}\n  pull: never\n` : '';
      writeFileSync(file, `version: 1\nlisten: { host: 127.0.0.1, port: ${port} }\n${backendSection}servers: {}\n`);
      const result = await serve(file, 30_000);
      assert.equal(result.code, 1, `berth serve ended with ${String(result.code)}:\n${result.stderr}`);
      assert.match(result.stderr, /cannot listen/);
      assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
    });
  }
});
