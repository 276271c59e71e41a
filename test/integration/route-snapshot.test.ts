// One route table per request: a reload landing while the gate waits on
// the issuer never serves the request from a route its gate did not check.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { recordingUpstream, startTestBerth } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

describe('a request and a reload', () => {
  test('the route the gate checked is the route that serves, even when a reload lands in between', { timeout: 60_000 }, async () => {
    const before = await recordingUpstream();
    const after = await recordingUpstream();
    // The issuer's introspection endpoint, answering only when the test lets it.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let asked = 0;
    const issuer = createServer((req, res) => {
      asked++;
      req.resume();
      void released.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active: true, sub: 'alice', iss: `http://127.0.0.1:${(issuer.address() as AddressInfo).port}` })));
    });
    await new Promise<void>((resolve) => issuer.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}`;
    const head = `auth:\n  - type: jwt\n    issuer: ${url}\n    introspection: { endpoint: ${url}/introspect, clientId: berth, clientSecret: s3cret, allowMissingAudience: true }\n`;
    const docs = (upstream: string, access = ''): string => `  docs:\n    type: remote\n    url: ${upstream}\n${access}`;
    const b = await startTestBerth(docs(before.url), head);
    try {
      const request = fetch(`${b.url}/mcp/docs`, {
        method: 'POST',
        headers: { authorization: 'Bearer opaque-token-of-alice', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
      await waitFor(() => asked > 0, { message: 'the gate asking the issuer' });
      // While the gate waits: the route moves to another upstream, which alice may not use.
      const generation = b.berth.routes.current.generation;
      b.writeConfig(docs(after.url, '    access: { users: [bob] }\n'), head);
      await waitFor(() => b.berth.routes.current.generation > generation, { timeoutMs: 20_000, message: 'the reload' });
      release();
      await (await request).arrayBuffer();
      assert.equal(after.seen.length, 0, 'the upstream of a route the gate never checked for alice saw nothing of her');
    } finally {
      release();
      await b.stop();
      issuer.close();
      before.server.close();
      after.server.close();
    }
  });
});
