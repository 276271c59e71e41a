// With apiKey auth a browser cannot send the key on a navigation: the link in
// berth's MCP prompt carries a one-time, short-lived ticket that opens a
// browser session for that user (HttpOnly, SameSite=Strict). Real Chromium.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { sha256Hex } from '../../src/auth/api-key.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { connectClient, NOTES_YAML, startTestBerth } from '../helpers/berth.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const browserSkip = existsSync(CHROMIUM) ? false : `SKIPPED: ${CHROMIUM} is missing; install it with bash scripts/chromium.sh`;
const KEY = 'berth_alice-link-0123456789abcdefghij';
const SERVERS = NOTES_YAML;

describe('the link in the MCP prompt opens /connect in a browser', { skip: browserSkip }, () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(SERVERS, `state: { key: "a-connect-link-test-key-of-32-characters" }\nauth:\n  - type: apiKey\n    keys: [{ user: alice, sha256: "${sha256Hex(KEY)}" }]\n`);
  });
  after(() => b?.stop());

  test('once, for its user only; the page saves for that user', async () => {
    const refused = await connectClient(b.url, 'notes', {}, { 'x-api-key': KEY }).then(
      () => assert.fail('connecting without credentials should fail'),
      (err: Error) => err.message,
    );
    const link = /(http:\/\/[^\s"]+\/connect\/notes\?ticket=[\w.-]+)/.exec(refused)?.[1] ?? assert.fail(`no one-time link in: ${refused}`);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const bare = await browser.newPage();
      assert.equal((await bare.goto(`${b.url}/connect/notes`))?.status(), 401, 'without the link the page needs the key');

      const page = await (await browser.newContext()).newPage();
      const opened = await page.goto(link);
      assert.equal(opened?.status(), 200);
      assert.equal(new URL(page.url()).search, '', 'the ticket left the address bar');
      assert.match(await page.locator('body').innerText(), /Signed in as alice/);
      const cookies = await page.context().cookies();
      assert.ok(cookies.some((c) => c.name === '__Host-berth-session' && c.httpOnly && c.secure && c.sameSite === 'Strict'), JSON.stringify(cookies));
      await page.fill('#f-NOTES_TOKEN', 'from-the-browser');
      await Promise.all([page.waitForURL(/done=saved/), page.click('button[type=submit]:not(.remove)')]);
      const listed = (await (await fetch(`${b.url}/api/credentials`, { headers: { 'x-api-key': KEY } })).json()) as { servers: unknown };
      assert.deepEqual(listed.servers, { notes: ['NOTES_TOKEN'] });

      const again = await (await browser.newContext()).newPage();
      assert.equal((await again.goto(link))?.status(), 403, 'a used link opens nothing');
      const forged = await (await browser.newContext()).newPage();
      assert.equal((await forged.goto(link.replace(/\.[\w-]+$/, '.AAAA')))?.status(), 403, 'a forged ticket opens nothing');
    } finally {
      await browser.close();
    }
  });
});
