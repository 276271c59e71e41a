// The SSRF guard against DNS rebinding: a host is resolved once, the answer is
// checked, and the connection goes to exactly those addresses. The resolver is
// the test's own (no real DNS); the servers listen on 127.0.0.1 and ::1 only.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Resolve, ResolvedAddress } from '../../src/oauth/ssrf.ts';
import { checkUrl, guardedFetch, pinnedLookup } from '../../src/oauth/ssrf.ts';

/** A resolver that gives `first` to the first question and `later` to every other, counting them. */
function rebinding(first: readonly ResolvedAddress[], later: readonly ResolvedAddress[]): Resolve & { asked: number } {
  const resolve = Object.assign(
    async (): Promise<readonly ResolvedAddress[]> => {
      resolve.asked++;
      return resolve.asked === 1 ? first : later;
    },
    { asked: 0 },
  );
  return resolve;
}

const V4: ResolvedAddress = { address: '127.0.0.1', family: 4 };
const V6: ResolvedAddress = { address: '::1', family: 6 };
const PUBLIC: ResolvedAddress = { address: '93.184.216.34', family: 4 };

describe('the SSRF guard pins each connection to the addresses it checked', () => {
  let a: Server;
  let b: Server;
  let port: number;
  const hits = { a: 0, b: 0 };

  before(async () => {
    // One port, two loopback addresses, each answering where it is and what it got.
    const answering = (at: 'a' | 'b', address: string): Server =>
      createServer(async (req, res) => {
        hits[at]++;
        let body = '';
        for await (const chunk of req) body += String(chunk);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ at: address, method: req.method, type: req.headers['content-type'], body }));
      });
    a = answering('a', '127.0.0.1');
    await new Promise<void>((resolve) => a.listen(0, '127.0.0.1', resolve));
    port = (a.address() as AddressInfo).port;
    b = answering('b', '::1');
    await new Promise<void>((resolve, reject) => b.once('error', reject).listen(port, '::1', resolve));
  });
  after(async () => {
    for (const s of [a, b]) {
      s?.closeAllConnections();
      await new Promise<void>((resolve) => (s === undefined ? resolve() : s.close(() => resolve())));
    }
  });

  it('resolves a name once and connects to that answer, never to a later one', async () => {
    for (const [first, later, at] of [[V4, V6, '127.0.0.1'], [V6, V4, '::1']] as const) {
      const resolve = rebinding([first], [later]);
      const res = await guardedFetch(`http://auth.rebind.test:${port}/.well-known/oauth-authorization-server`, { headers: { accept: 'application/json' } }, { allowPrivateNetworks: true }, resolve);
      assert.deepEqual(await res.json(), { at, method: 'GET', body: '' });
      assert.equal(resolve.asked, 1, 'one DNS question per hop');
    }
    assert.deepEqual(hits, { a: 1, b: 1 });
  });

  it('a POST goes to the checked address as well, body and headers intact', async () => {
    const resolve = rebinding([V4], [V6]);
    const before = { ...hits };
    const res = await guardedFetch(`http://auth.rebind.test:${port}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token' }) }, { allowPrivateNetworks: true }, resolve);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { at: '127.0.0.1', method: 'POST', type: 'application/x-www-form-urlencoded', body: 'grant_type=refresh_token' });
    assert.deepEqual(hits, { a: before.a + 1, b: before.b });
  });

  it('a name that resolves to loopback (or to public and loopback addresses at once) is refused without a connection', async () => {
    const before = { ...hits };
    for (const answer of [[V4], [PUBLIC, V6]]) {
      await assert.rejects(guardedFetch(`https://auth.rebind.test:${port}/token`, {}, { allowPrivateNetworks: false }, rebinding(answer, [V4])), { code: 'oauth_url_refused', message: /resolves to (127\.0\.0\.1|::1), a loopback/ });
    }
    assert.deepEqual(hits, before, 'nothing reached the loopback servers');
  });

  it('checkUrl hands out exactly the addresses it checked; the pinned lookup answers with those whatever is asked', async () => {
    const resolve = rebinding([PUBLIC], [V4]);
    const checked = await checkUrl(new URL('https://auth.rebind.test/token'), { allowPrivateNetworks: false }, resolve);
    assert.deepEqual(checked, [PUBLIC]);
    const lookup = pinnedLookup(checked);
    const one = await new Promise<unknown[]>((done) => lookup('auth.rebind.test', {}, (...args: unknown[]) => done(args)));
    assert.deepEqual(one, [null, PUBLIC.address, 4]);
    const all = await new Promise<unknown[]>((done) => lookup('auth.rebind.test', { all: true }, (...args: unknown[]) => done(args)));
    assert.deepEqual(all, [null, [PUBLIC]]);
    assert.equal(resolve.asked, 1, 'the connection asks no DNS question of its own');
  });
});
