// The person's side of upstream OAuth in a real browser: headless Chromium
// opens /connect/<server>, presses Authorize, signs in and consents at the
// authorization server's own pages (oidc-provider's), comes back through
// berth's callback and sees "Connected"; the SDK client's next call carries a
// token the upstream accepts.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import type { ProtectedServer } from '../helpers/protected-server.ts';
import type { OAuthRig } from '../helpers/oauth-flow.ts';
import { startOAuthRig, whoami } from '../helpers/oauth-flow.ts';
import { browserSkip, launchChromium, loginAndConsent } from '../helpers/chromium.ts';

// Skipped per test, not per suite: node's summary counts skipped tests, never the tests of a skipped suite.
describe('upstream OAuth in headless Chromium: /connect → Authorize → login and consent → callback → Connected', () => {
  let rig: OAuthRig | undefined;
  let issuer: TestIssuer;
  let upstream: ProtectedServer;
  let b: TestBerth;

  // No auth: loopback callers are `anonymous`, as in a default berth.
  before(async () => {
    if (browserSkip !== false) return;
    rig = await startOAuthRig({ interactive: true, refresh: true }, (dir) => `state: { path: ${JSON.stringify(path.join(dir, 'state.json'))}, key: "0123456789abcdef0123456789abcdef-browser" }\n`);
    ({ issuer, upstream, berth: b } = rig);
  });
  after(() => rig?.stop());

  test('the person authorizes in the browser and the client\'s next call carries their token', { skip: browserSkip }, async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${b.url}/connect/notes`);
      assert.match((await page.textContent('#oauth-state')) ?? '', /Not connected/);
      await page.click('button[value=authorize]');
      await loginAndConsent(page, issuer.issuer, 'ada');
      await page.waitForURL(`${b.url}/connect/notes?done=connected`, { timeout: 10_000 });
      assert.match((await page.textContent('#oauth-state')) ?? '', /^Connected \(scopes mcp:read, at http:\/\/127\.0\.0\.1:\d+\)\.$/);
    } finally {
      await browser.close();
    }
    assert.equal(await whoami(b.url, 'notes', {}), `sub=ada aud=${upstream.url}`);
  });
});
