// What a running berth says when a reload cannot read its file: the last good config keeps serving,
// and the hint fits a berth that already knows its file (not a command line missing a path).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { freePort, startTestBerth } from '../helpers/berth.ts';

test('a reload of a file that went away keeps the last good config and hints at putting the file back', async () => {
  const b = await startTestBerth(`  far:\n    type: remote\n    url: http://127.0.0.1:${await freePort()}/mcp\n`);
  try {
    rmSync(b.file);
    const result = await b.berth.controller.reload('SIGHUP');
    assert.equal(result.kind, 'rejected');
    const text = result.kind === 'rejected' ? result.errors.join('\n') : '';
    assert.match(text, /cannot read the config file \(ENOENT\) \(the last good config keeps serving; put the file back to apply it again\)/);
    assert.doesNotMatch(text, /first argument/);
    assert.equal((await fetch(`${b.url}/readyz`)).status, 200, 'still serving');
  } finally {
    await b.stop();
  }
});
