import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
