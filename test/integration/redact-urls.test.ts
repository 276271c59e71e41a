// URL credentials in a remote's URL (`http://user:pass@…?token=…`) never reach
// a client's error or a log line, whichever part of berth quotes the URL.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/observe/log.ts';
import { freePort, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const SECRETS = ['hunter2', 's3cret'];
const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'redact', version: '1' } } };

test('an SSE remote\'s error quoting its URL is redacted in the client\'s answer and in every log line', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const port = await freePort();
  const b = await startTestBerth(`  sse:\n    type: remote\n    transport: sse\n    url: http://user:hunter2@127.0.0.1:${port}/sse?token=s3cret\n`, '', { logger: createLogger({ level: 'debug', destination: sink }) });
  try {
    const res = await fetch(`${b.url}/mcp/sse`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(INIT) });
    const answer = await res.text();
    assert.ok(res.status >= 500, answer);
    for (const secret of SECRETS) assert.ok(!answer.includes(secret), `the client's error shows ${secret}: ${answer}`);
    await waitFor(() => lines.some((l) => l.includes('upstream unreachable')), { timeoutMs: 10_000, message: 'the unreachable upstream logged' });
    const leaked = lines.filter((l) => SECRETS.some((s) => l.includes(s)));
    assert.deepEqual(leaked, [], 'log lines with URL credentials');
  } finally {
    await b.stop();
  }
});
