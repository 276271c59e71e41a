// A config edit is never lost: whenever it lands after berth read the file,
// at start or right after a git-sync style symlink swap, it is applied.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Berth } from '../../src/cli/serve.ts';
import { startBerth } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { configText, freePort } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

/** 30 moments spread over the first 2 s after the event an edit races. */
const OFFSETS_MS = Array.from({ length: 30 }, (_, i) => Math.round((i * 2_000) / 29));

/** Remote servers only: the races are about reading the file, so no process needs to start. */
function servers(...names: string[]): string {
  return names.map((n) => `  ${n}:\n    type: remote\n    url: http://127.0.0.1:9/mcp\n`).join('');
}

/** What editors do: write a temp file beside it, rename it over. */
function writeAtomically(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.hrtime.bigint()}`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** What the kubelet and git-sync do: point a new symlink at the new version and rename it over the old. */
function swapLink(link: string, target: string): void {
  symlinkSync(target, `${link}.tmp`);
  renameSync(`${link}.tmp`, link);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `race` once per offset, `batch` berths at a time, and names every offset whose edit was never applied. */
async function lostEdits(batchSize: number, race: (offsetMs: number) => Promise<void>): Promise<string[]> {
  const lost: string[] = [];
  for (let i = 0; i < OFFSETS_MS.length; i += batchSize) {
    const batch = OFFSETS_MS.slice(i, i + batchSize);
    const results = await Promise.allSettled(batch.map(race));
    results.forEach((r, j) => {
      if (r.status === 'rejected') lost.push(`${batch[j]} ms (${(r.reason as Error).message})`);
    });
  }
  return lost;
}

/**
 * Waits for the edit to be served. The watch applies it within a second or
 * two; the deadline passes one periodic resync (60 s), the level-based
 * comparison that applies it even when a loaded machine drops a watch event.
 * A lost edit is never applied at all.
 */
const applied = (berth: Berth, server: string): Promise<boolean> => waitFor(() => berth.routes.current.handlers.has(server), { timeoutMs: 75_000, message: `server ${server} served` });

describe('config edits', () => {
  test('an atomic rename of berth.yaml at any moment of the first 2 s after /healthz answers is applied', { timeout: 300_000 }, async () => {
    const lost = await lostEdits(5, async (offsetMs) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'berth-edit-'));
      const file = path.join(dir, 'berth.yaml');
      writeFileSync(file, configText(servers('first')));
      const port = await freePort();
      const starting = startBerth(file, { port }, silentLogger());
      starting.catch(() => undefined);
      try {
        await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, { timeoutMs: 20_000, message: '/healthz' });
        await delay(offsetMs);
        writeAtomically(file, configText(servers('first', 'edited')));
        await applied(await starting, 'edited');
      } finally {
        await (await starting).stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
    assert.deepEqual(lost, [], `edits lost at these offsets: ${lost.join(', ')}`);
  });

  test('an edit at any moment of the first 2 s after a git-sync style symlink swap is applied', { timeout: 300_000 }, async () => {
    const lost = await lostEdits(5, async (offsetMs) => {
      const root = mkdtempSync(path.join(tmpdir(), 'berth-swap-'));
      for (const [rev, names] of [['rev1', ['first']], ['rev2', ['first', 'swapped']]] as const) {
        mkdirSync(path.join(root, rev));
        writeFileSync(path.join(root, rev, 'berth.yaml'), configText(servers(...names)));
      }
      symlinkSync('rev1', path.join(root, 'repo'));
      const berth = await startBerth(path.join(root, 'repo', 'berth.yaml'), { port: 0 }, silentLogger());
      try {
        swapLink(path.join(root, 'repo'), 'rev2');
        await delay(offsetMs);
        writeAtomically(path.join(root, 'rev2', 'berth.yaml'), configText(servers('first', 'swapped', 'edited')));
        await applied(berth, 'edited');
      } finally {
        await berth.stop();
        rmSync(root, { recursive: true, force: true });
      }
    });
    assert.deepEqual(lost, [], `edits lost at these offsets: ${lost.join(', ')}`);
  });
});
