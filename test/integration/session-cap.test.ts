// The per-client session cap is per identity: anonymous clients coming from
// many loopback addresses (127.0.1.x) are one client, and cannot push out an
// authenticated user's session through the total cap.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { sha256Hex } from '../../src/auth/api-key.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingYaml, startTestBerth } from '../helpers/berth.ts';

const ALICE = 'berth_alice-cap-0123456789abcdefgh';
const ADDRESSES = 21;
const PER_ADDRESS = 2;

/** One POST from a chosen loopback address; the answer's status and session id. */
function post(url: string, body: unknown, headers: Record<string, string>, localAddress = '127.0.0.1'): Promise<{ status: number; session: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', localAddress, agent: false, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, session: res.headers['mcp-session-id'] as string | undefined }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer in 10 s')));
    req.end(JSON.stringify(body));
  });
}

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'cap', version: '1' } } };

describe('the per-client session cap', () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(everythingYaml(), `listen: { host: 127.0.0.1, port: 0, maxSessions: 20, maxSessionsPerClient: 5 }\nauth:\n  - type: apiKey\n    keys: [{ user: alice, sha256: "${sha256Hex(ALICE)}" }]\n  - type: none\n`);
  });
  after(() => b?.stop());

  test(`anonymous sessions from ${ADDRESSES} loopback addresses count as one client and leave alice's session alone`, async () => {
    const url = `${b.url}/mcp/everything`;
    const alice = await post(url, INIT, { 'x-api-key': ALICE });
    assert.equal(alice.status, 200);
    assert.ok(alice.session !== undefined);
    for (let a = 1; a <= ADDRESSES; a++) {
      for (let i = 0; i < PER_ADDRESS; i++) assert.equal((await post(url, INIT, {}, `127.0.1.${a}`)).status, 200);
    }
    const still = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'x-api-key': ALICE, 'mcp-session-id': alice.session, 'mcp-protocol-version': '2025-11-25' });
    assert.equal(still.status, 200, 'alice\'s session was evicted');
  });
});
