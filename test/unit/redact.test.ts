// URL credentials never reach a person: plan output, /status and logs show URLs through redactUrl.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactUrl, redactUrls } from '../../src/observe/redact.ts';

const cases: readonly { name: string; url: string; expected: string }[] = [
  { name: 'no credentials: unchanged, spelling kept', url: 'https://mcp.example.com/mcp?q=a%20b+c&x', expected: 'https://mcp.example.com/mcp?q=a%20b+c&x' },
  { name: 'user and password', url: 'https://alice:s3cret@mcp.example.com/mcp', expected: 'https://REDACTED:REDACTED@mcp.example.com/mcp' },
  { name: 'user only (a token as user name)', url: 'https://ghp_abc@github.example.com', expected: 'https://REDACTED@github.example.com' },
  { name: 'a password containing @', url: 'http://u:p@ss@host:8080/', expected: 'http://REDACTED:REDACTED@host:8080/' },
  { name: 'token parameters among others', url: 'https://h/mcp?team=core&token=t1&apikey=k1&api_key=k2&API-KEY=k3', expected: 'https://h/mcp?team=core&token=REDACTED&apikey=REDACTED&api_key=REDACTED&API-KEY=REDACTED' },
  { name: 'OAuth and signed-URL names', url: 'https://h/?access_token=a&refresh_token=b&client_secret=c&sig=d&X-Amz-Signature=e&X-Amz-Credential=f&password=g', expected: 'https://h/?access_token=REDACTED&refresh_token=REDACTED&client_secret=REDACTED&sig=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&password=REDACTED' },
  { name: 'key and secret names', url: 'wss://h/s?key=1&subscription-key=2&secret=3&keyword=4', expected: 'wss://h/s?key=REDACTED&subscription-key=REDACTED&secret=REDACTED&keyword=4' },
  { name: 'a token in the fragment', url: 'https://h/cb#access_token=abc&state=xyz', expected: 'https://h/cb#access_token=REDACTED&state=xyz' },
  { name: 'an encoded parameter name', url: 'https://h/?api%5Fkey=1', expected: 'https://h/?api%5Fkey=REDACTED' },
  { name: 'not a URL: unchanged', url: 'token=abc', expected: 'token=abc' },
];

describe('redactUrl', () => {
  for (const c of cases) it(c.name, () => assert.equal(redactUrl(c.url), c.expected));
});

describe('redactUrls', () => {
  it('redacts every URL inside free text and leaves the words around them', () => {
    assert.equal(
      redactUrls('fetch https://u:p@a.example/x?token=1 failed; see "http://b.example/?sig=2"'),
      'fetch https://REDACTED:REDACTED@a.example/x?token=REDACTED failed; see "http://b.example/?sig=REDACTED"',
    );
  });
});
