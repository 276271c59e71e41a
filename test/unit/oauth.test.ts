import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { readClientKey } from '../../src/config/client-key.ts';
import { parseBearerChallenge } from '../../src/oauth/discovery.ts';
import { checkUrl, isBlockedAddress } from '../../src/oauth/ssrf.ts';

describe('the SSRF guard', () => {
  const refused = [
    { name: 'loopback', url: 'https://127.0.0.1/token' },
    { name: 'loopback, another form', url: 'https://127.1.2.3/' },
    { name: 'IPv6 loopback', url: 'https://[::1]/' },
    { name: 'RFC 1918', url: 'https://10.1.2.3/' },
    { name: 'RFC 1918 /12', url: 'https://172.20.0.1/' },
    { name: 'RFC 1918 /16', url: 'https://192.168.1.1/' },
    { name: 'cloud metadata', url: 'https://169.254.169.254/latest/meta-data' },
    { name: 'AWS IPv6 metadata', url: 'https://[fd00:ec2::254]/' },
    { name: 'link-local IPv6', url: 'https://[fe80::1]/' },
    { name: 'IPv4-mapped loopback', url: 'https://[::ffff:127.0.0.1]/' },
    { name: 'CGNAT', url: 'https://100.64.0.1/' },
    { name: 'unspecified', url: 'https://0.0.0.0/' },
    { name: 'multicast', url: 'https://224.0.0.1/' },
    { name: 'plain http', url: 'http://93.184.216.34/' },
    { name: 'credentials in the URL', url: 'https://user:pw@93.184.216.34/' },
    { name: 'another scheme', url: 'file:///etc/passwd' },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, async () => {
      await assert.rejects(checkUrl(new URL(c.url), { allowPrivateNetworks: false }), { code: 'oauth_url_refused' });
    });
  }

  it('lets a public address through, and private ones (over http too) only where allowed', async () => {
    await checkUrl(new URL('https://93.184.216.34/'), { allowPrivateNetworks: false });
    await checkUrl(new URL('https://[2606:2800:220:1:248:1893:25c8:1946]/'), { allowPrivateNetworks: false });
    await checkUrl(new URL('http://127.0.0.1:9000/token'), { allowPrivateNetworks: true });
    await assert.rejects(checkUrl(new URL('ftp://127.0.0.1/'), { allowPrivateNetworks: true }), { code: 'oauth_url_refused' });
    assert.equal(isBlockedAddress('not an address'), true);
  });
});

describe('parseBearerChallenge', () => {
  const cases = [
    { name: 'resource metadata and scope', header: 'Bearer resource_metadata="https://a.example/.well-known/oauth-protected-resource/mcp", scope="read write"', expected: { resourceMetadata: 'https://a.example/.well-known/oauth-protected-resource/mcp', scope: 'read write' } },
    { name: 'an error, unquoted values, any case', header: 'bearer error=invalid_token, Scope="x"', expected: { scope: 'x', error: 'invalid_token' } },
    { name: 'escaped quotes', header: 'Bearer error_description="say \\"hi\\"", error="insufficient_scope"', expected: { error: 'insufficient_scope' } },
    { name: 'no parameters', header: 'Bearer', expected: {} },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(parseBearerChallenge(c.header), c.expected));
  it('is undefined for another scheme or no header', () => {
    assert.equal(parseBearerChallenge('Basic realm="x"'), undefined);
    assert.equal(parseBearerChallenge('Bearerish'), undefined);
    assert.equal(parseBearerChallenge(undefined), undefined);
  });
});

describe('readClientKey (oauth.privateKey)', () => {
  const pem = (type: 'rsa' | 'ec' | 'ed25519' | 'x25519', curve?: string): string =>
    (generateKeyPairSync as (t: string, o: object) => { privateKey: { export(o: object): string } })(type, type === 'rsa' ? { modulusLength: 2048 } : curve === undefined ? {} : { namedCurve: curve }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  const jwkOf = (type: 'ec', curve: string): Record<string, unknown> => (generateKeyPairSync as (t: string, o: object) => { privateKey: { export(o: object): Record<string, unknown> } })(type, { namedCurve: curve }).privateKey.export({ format: 'jwk' });
  const cases: readonly { name: string; settings: { key: string; kid?: string; alg?: string }; expected: { alg: string; kid?: string } | { field: string; problem: RegExp } }[] = [
    { name: 'RSA PEM: RS256 by default', settings: { key: pem('rsa') }, expected: { alg: 'RS256' } },
    { name: 'RSA PEM with PS384', settings: { key: pem('rsa'), alg: 'PS384', kid: 'k1' }, expected: { alg: 'PS384', kid: 'k1' } },
    { name: 'P-384 PEM: ES384 by its curve', settings: { key: pem('ec', 'P-384') }, expected: { alg: 'ES384' } },
    { name: 'Ed25519 PEM: EdDSA', settings: { key: pem('ed25519') }, expected: { alg: 'EdDSA' } },
    { name: 'a JWK keeps its own kid and alg', settings: { key: JSON.stringify({ ...jwkOf('ec', 'P-256'), kid: 'from-jwk', alg: 'ES256' }) }, expected: { alg: 'ES256', kid: 'from-jwk' } },
    { name: 'a configured kid wins over the JWK\'s', settings: { key: JSON.stringify({ ...jwkOf('ec', 'P-256'), kid: 'from-jwk' }), kid: 'configured' }, expected: { alg: 'ES256', kid: 'configured' } },
    { name: 'an alg the key cannot sign', settings: { key: pem('ec', 'P-256'), alg: 'RS256' }, expected: { field: 'alg', problem: /EC prime256v1 key, which cannot sign RS256 \(it signs ES256\)/ } },
    { name: 'a JWK without its private part', settings: { key: JSON.stringify({ ...jwkOf('ec', 'P-256'), d: undefined }) }, expected: { field: 'key', problem: /is not a private key/ } },
    { name: 'a key of a kind that does not sign', settings: { key: pem('x25519') }, expected: { field: 'key', problem: /is a x25519 key; berth signs with RSA/ } },
    { name: 'not a key at all', settings: { key: 'hunter2' }, expected: { field: 'key', problem: /is not a private key/ } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const key = readClientKey(c.settings);
      if ('alg' in c.expected) {
        assert.ok(key.ok, key.ok ? '' : key.problem);
        assert.equal(key.alg, c.expected.alg);
        assert.equal(key.kid, c.expected.kid);
      } else {
        assert.ok(!key.ok);
        assert.equal(key.field, c.expected.field);
        assert.match(key.problem, c.expected.problem);
      }
    });
  }
});
