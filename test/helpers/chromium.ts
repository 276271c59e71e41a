// Headless Chromium for the browser tests (Debian's, `bash scripts/chromium.sh`), and the person's
// part at oidc-provider's dev login and consent pages.
import { existsSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
// Loopback only: no background or component traffic to any other host.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The reason a browser test is skipped, or false when Chromium is installed. */
export const browserSkip: string | false = existsSync(CHROMIUM) ? false : `SKIPPED: ${CHROMIUM} is missing; install it with bash scripts/chromium.sh`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** On the issuer's pages: signs in as `login` (any password) and allows the client what it asked for. */
export async function loginAndConsent(page: Page, issuer: string, login: string): Promise<void> {
  await page.waitForURL((url) => url.origin === issuer, { timeout: 10_000 });
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Authorize', { timeout: 10_000 });
  await page.click('button[type=submit]');
}
