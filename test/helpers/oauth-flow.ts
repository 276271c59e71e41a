// The person's part of berth's upstream OAuth, played with fetch: open
// /connect/<server>, press Authorize, follow berth's link on to the
// authorization server, sign in and consent there (signIn), and arrive back at
// berth's callback. Shared by the OAuth tests and bench/oauth.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestBerth } from './berth.ts';
import { connectClient, startTestBerth } from './berth.ts';
import type { IssuerOptions, TestIssuer } from './oidc.ts';
import { continueUrl, signIn, startIssuer } from './oidc.ts';
import type { ProtectedServer } from './protected-server.ts';
import { startProtectedServer } from './protected-server.ts';

type Headers = Readonly<Record<string, string>>;

/** Presses "Authorize" on /connect/<server>: berth's answer (a page leading on to the authorization server, or one saying why not). */
export async function pressAuthorize(base: string, server: string, headers: Headers): Promise<Response> {
  const page = await fetch(`${base}/connect/${server}`, { headers });
  const html = await page.text();
  assert.equal(page.status, 200, html);
  const csrf = /name="berth:csrf" value="([^"]+)"/.exec(html)?.[1] ?? assert.fail(`no Authorize form in ${html}`);
  const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  return fetch(`${base}/connect/${server}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { ...headers, cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ 'berth:csrf': csrf, 'berth:oauth': 'authorize' }),
  });
}

/** Presses Authorize and signs in as `login`; returns the callback URL (on berth's public URL) with code, state and iss. */
export async function consent(base: string, server: string, headers: Headers, login: string, callback = `${base}/oauth/callback`): Promise<URL> {
  const start = await pressAuthorize(base, server, headers);
  const page = await start.text();
  assert.equal(start.status, 200, page);
  return signIn(new URL(continueUrl(page) ?? assert.fail(`no link onwards in ${page}`)), login, callback);
}

/** The browser arrives at berth's callback (through the public URL, which leads to berth). */
export function arrive(base: string, callback: URL, headers: Headers): Promise<Response> {
  return fetch(`${base}${callback.pathname}${callback.search}`, { headers, redirect: 'manual' });
}

/** The whole round: berth's final answer (303 back to /connect/<server>?done=connected when it worked). */
export async function authorize(base: string, server: string, headers: Headers, login: string): Promise<{ status: number; location: string | null; page: string }> {
  const done = await arrive(base, await consent(base, server, headers, login), headers);
  return { status: done.status, location: done.headers.get('location'), page: await done.text() };
}

/** The protected server's `whoami` through berth, as the caller `headers` name: `sub=… aud=…` of the token it got. */
export async function whoami(base: string, server: string, headers: Headers): Promise<string> {
  const client = await connectClient(base, server, {}, headers);
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    return (result.content as { text: string }[])[0]?.text ?? '';
  } finally {
    await client.close();
  }
}

/** An authorization server, a protected server of it, a state directory and a berth in front with one remote `notes`. */
export interface OAuthRig {
  readonly issuer: TestIssuer;
  readonly upstream: ProtectedServer;
  readonly stateDir: string;
  berth: TestBerth;
  stop(): Promise<void>;
}

export async function startOAuthRig(issuerOptions: IssuerOptions, head: (stateDir: string) => string): Promise<OAuthRig> {
  const issuer = await startIssuer(issuerOptions);
  const upstream = await startProtectedServer(issuer.issuer);
  const stateDir = mkdtempSync(path.join(tmpdir(), 'berth-oauth-'));
  const rig: OAuthRig = {
    issuer,
    upstream,
    stateDir,
    berth: await startTestBerth(`  notes:\n    type: remote\n    url: ${upstream.url}\n    oauth: { allowPrivateNetworks: true }\n`, head(stateDir)),
    async stop() {
      await rig.berth.stop();
      await upstream.stop();
      await issuer.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return rig;
}
