// listen.maxAnswerBytes is the one limit on a server's answer: a stdio
// server's line included, not only an HTTP server's answer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { connectClient, everythingYaml, startTestBerth } from '../helpers/berth.ts';

test('a stdio server answering past listen.maxAnswerBytes fails that request; smaller answers and the server go on', async () => {
  const b = await startTestBerth(everythingYaml(), 'listen: { host: 127.0.0.1, port: 0, maxAnswerBytes: 4096 }\n');
  try {
    const client = await connectClient(b.url, 'everything');
    const err = await client.callTool({ name: 'echo', arguments: { message: 'x'.repeat(8_000) } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, -32603);
    assert.match(err.message, /larger than berth's limit of 4096 bytes per message/);
    const small = await client.callTool({ name: 'echo', arguments: { message: 'small' } });
    assert.deepEqual(small.content, [{ type: 'text', text: 'Echo: small' }]);
    await client.close();
  } finally {
    await b.stop();
  }
});
