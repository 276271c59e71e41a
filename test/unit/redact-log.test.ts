import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { errorResponse } from '../../src/http/jsonrpc.ts';
import { createLogger } from '../../src/observe/log.ts';

const URL_WITH_SECRETS = 'http://user:hunter2@upstream.test/sse?token=s3cret';

test('a log line quoting a URL with credentials shows them REDACTED, in plain fields and in errors', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination: sink }).child({ server: 's' });
  log.warn({ reason: `SSE error at ${URL_WITH_SECRETS}`, err: new Error(`GET ${URL_WITH_SECRETS} failed`) }, 'upstream unreachable');
  log.error(new Error(`cannot reach ${URL_WITH_SECRETS}`));
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.ok(!line.includes('hunter2') && !line.includes('s3cret'), line);
    assert.match(line, /REDACTED/);
  }
});

test('a JSON-RPC error berth makes never carries URL credentials', () => {
  const message = JSON.stringify(errorResponse(1, -32003, `server s is unreachable: ${URL_WITH_SECRETS}`));
  assert.ok(!message.includes('hunter2') && !message.includes('s3cret'), message);
  assert.match(message, /http:\/\/REDACTED:REDACTED@upstream\.test\/sse\?token=REDACTED/);
});
