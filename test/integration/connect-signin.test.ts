// "Sign in" on /connect through a jwt provider's issuer (oidc-provider on
// loopback): a browser without a session is offered it, runs authorization
// code + PKCE at the issuer's own login and consent pages, and lands on the
// page as the very user the issuer's tokens make an MCP client. Real Chromium,
// and the refusals with fetch and a cookie jar.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { JWTPayload } from 'jose';
import { decodeJwt, importJWK, SignJWT } from 'jose';
import type { TestBerth } from '../helpers/berth.ts';
import { freePort, NOTES_YAML, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { signIn, startIssuer } from '../helpers/oidc.ts';
import { browserSkip, launchChromium, loginAndConsent } from '../helpers/chromium.ts';

const CLIENT_ID = 'berth-connect';
/** An API key for ada under the jwt provider's usernamePrefix: the same person, by the operator's explicit mapping. */
const CORP_KEY = 'berth_ada-corp-0123456789abcdefghijkl';
/** `ada` as a trusted auth proxy names her: the header provider's own namespace, another person. */
const PROXY_ADA = { 'x-forwarded-user': 'ada' };

/**
 * A relay before an issuer's token endpoint (the issuer's metadata names it): it passes every
 * grant on and, while `tamper` is set, re-signs the ID token with the issuer's own key and other
 * claims. An honest issuer never does this; a mix-up or a replayed ID token looks like it.
 */
interface TokenRelay {
  readonly url: string;
  tamper: ((claims: JWTPayload) => JWTPayload) | undefined;
  stop(): Promise<void>;
}

async function startTokenRelay(issuer: () => TestIssuer): Promise<TokenRelay> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const answer = await fetch(`${issuer().issuer}/token`, { method: 'POST', headers: { 'content-type': req.headers['content-type'] ?? '' }, body: Buffer.concat(chunks) });
        const json = (await answer.json()) as Record<string, unknown>;
        const edit = relay.tamper;
        if (edit !== undefined && typeof json.id_token === 'string') {
          const [key] = issuer().keys;
          json.id_token = await new SignJWT(edit(decodeJwt(json.id_token))).setProtectedHeader({ alg: 'RS256', kid: key!.kid! }).sign(await importJWK(key!, 'RS256'));
        }
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const relay: TokenRelay = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    tamper: undefined,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return relay;
}

describe('sign in on /connect through the jwt provider\'s issuer', () => {
  let issuer: TestIssuer;
  /** A second issuer, whose token endpoint is the relay's. */
  let relayed: TestIssuer;
  let relay: TokenRelay;
  let b: TestBerth;
  let callback: string;
  /** berth by another loopback name than the issuer's: a site of its own, as an issuer elsewhere is (cookies ignore ports). */
  let site: string;

  before(async () => {
    const port = await freePort();
    callback = `http://127.0.0.1:${port}/signin/callback`;
    site = `http://localhost:${port}`;
    const client = { client_id: CLIENT_ID, redirect_uris: [callback, `${site}/signin/callback`], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' };
    issuer = await startIssuer({ interactive: true, clients: [client] });
    relay = await startTokenRelay(() => relayed);
    relayed = await startIssuer({ interactive: true, clients: [client], metadata: (doc) => ({ ...doc, token_endpoint: relay.url }) });
    const auth = [
      `  - type: jwt\n    issuer: ${issuer.issuer}\n    requiredScopes: [mcp:read]\n    usernamePrefix: "corp:"\n    browserSignIn: { clientId: ${CLIENT_ID}, allowPrivateNetworks: true }\n`,
      `  - type: apiKey\n    usernamePrefix: "corp:"\n    keys: [{ user: ada, key: ${CORP_KEY} }]\n`,
      '  - type: header\n',
      `  - type: jwt\n    issuer: ${relayed.issuer}\n    browserSignIn: { clientId: ${CLIENT_ID}, allowPrivateNetworks: true }\n`,
    ];
    b = await startTestBerth(NOTES_YAML, `state: { key: "a-connect-signin-test-key-of-32-characters" }\nauth:\n${auth.join('')}`, { serve: { port } });
  });
  after(async () => {
    await b?.stop();
    await relayed?.stop();
    await relay?.stop();
    await issuer?.stop();
  });

  const saved = async (headers: Record<string, string>): Promise<unknown> => ((await (await fetch(`${b.url}/api/credentials`, { headers })).json()) as { servers: unknown }).servers;

  test('in Chromium: offered on the page, login and consent at the issuer, back on the page as that user, who saves a credential', { skip: browserSkip }, async () => {
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext()).newPage();
      const offered = await page.goto(`${site}/connect/notes`);
      assert.equal(offered?.status(), 401);
      await page.click(`a.signin:has-text("Sign in with ${issuer.issuer}")`);
      await loginAndConsent(page, issuer.issuer, 'ada');
      // Back from another site: the session cookie is SameSite=Strict, so berth's own page must lead on, not the issuer's redirect.
      await page.waitForURL(`${site}/connect/notes`, { timeout: 10_000 });
      assert.match(await page.locator('body').innerText(), /Signed in as ada/);
      const cookies = await page.context().cookies(site);
      assert.ok(cookies.some((c) => c.name === '__Host-berth-session' && c.httpOnly && c.secure && c.sameSite === 'Strict'), JSON.stringify(cookies));
      assert.ok(!cookies.some((c) => c.name === '__Host-berth-signin'), 'the sign-in binding is spent');
      await page.fill('#f-NOTES_TOKEN', 'from-the-sign-in');
      await Promise.all([page.waitForURL(/done=saved/), page.click('button[type=submit]:not(.remove)')]);
    } finally {
      await browser.close();
    }
    // Stored for (provider, subject): the jwt provider's `corp:` namespace, which the first key shares by configuration.
    assert.deepEqual(await saved({ 'x-api-key': CORP_KEY }), { notes: ['NOTES_TOKEN'] });
    assert.deepEqual(await saved(PROXY_ADA), {}, 'an ada of another provider is another person');
  });

  /** Starts a sign-in as a browser would: the issuer's authorization URL and the binding cookie berth set. */
  const start = async (at = issuer): Promise<{ authorize: URL; binding: string }> => {
    const res = await fetch(`${b.url}/signin?${new URLSearchParams({ server: 'notes', issuer: at.issuer })}`, { redirect: 'manual', headers: { accept: 'text/html' } });
    assert.equal(res.status, 303, await res.text());
    const binding = res.headers.getSetCookie().find((c) => c.startsWith('__Host-berth-signin='));
    assert.match(binding ?? '', /; HttpOnly; SameSite=Lax/);
    return { authorize: new URL(res.headers.get('location') ?? ''), binding: binding!.split(';')[0]! };
  };
  const arrive = (at: URL, cookie: string): Promise<Response> => fetch(`${b.url}${at.pathname}${at.search}`, { redirect: 'manual', headers: { cookie } });
  const sessionOf = (res: Response): string | undefined => res.headers.getSetCookie().find((c) => c.startsWith('__Host-berth-session='))?.split(';')[0];

  test('with fetch: PKCE S256 and a nonce asked for; the state works once, in the browser that started it; metadata read once', async () => {
    const script = await fetch(`${b.url}/connect/notes`);
    assert.equal(script.status, 401, 'a script gets the plain 401');
    assert.match(script.headers.get('content-type') ?? '', /json/);

    const metadataReads = (): number => (issuer.hits.get('/.well-known/oauth-authorization-server') ?? 0) + (issuer.hits.get('/.well-known/openid-configuration') ?? 0);
    await start();
    const read = metadataReads();
    const first = await start();
    assert.equal(first.authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.match(first.authorize.searchParams.get('nonce') ?? '', /^[\w-]{43}$/);
    assert.equal(first.authorize.searchParams.get('resource'), `${b.url}/mcp/notes`);
    const back = await signIn(first.authorize, 'bob', callback);
    const done = await arrive(back, first.binding);
    assert.equal(done.status, 200, await done.text());
    const session = sessionOf(done) ?? assert.fail('no browser session');
    const opened = await fetch(`${b.url}/connect/notes`, { headers: { cookie: session } });
    assert.match(await opened.text(), /Signed in as <strong>bob<\/strong>/);

    const replayed = await arrive(back, first.binding);
    assert.equal(replayed.status, 400, 'a state works once');
    assert.match(await replayed.text(), /unknown, expired or used already/);
    assert.equal(sessionOf(replayed), undefined);

    const second = await start();
    const elsewhere = await arrive(await signIn(second.authorize, 'bob', callback), '__Host-berth-signin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    assert.equal(elsewhere.status, 400, 'a state is bound to the browser that started it');
    assert.match(await elsewhere.text(), /started in another browser/);
    assert.equal(sessionOf(elsewhere), undefined);

    const third = await start();
    const code = (await signIn(third.authorize, 'bob', callback)).searchParams.get('code') ?? '';
    const forged = await arrive(new URL(`${callback}?${new URLSearchParams({ code, state: 'forged-state', iss: issuer.issuer })}`), third.binding);
    assert.equal(forged.status, 400, 'a forged state opens nothing');
    assert.equal(sessionOf(forged), undefined);
    assert.equal(metadataReads(), read, 'anyone may start a sign-in: the issuer\'s metadata is not read again for each');
  });

  test('with fetch: a token the issuer mints for another audience signs nobody in', async () => {
    const { authorize, binding } = await start();
    issuer.audienceOf = () => 'http://127.0.0.1:1/another-resource';
    try {
      const done = await arrive(await signIn(authorize, 'mallory', callback), binding);
      assert.equal(done.status, 403);
      assert.match(await done.text(), /for another resource \(aud\)/);
      assert.equal(sessionOf(done), undefined);
    } finally {
      issuer.audienceOf = undefined;
    }
  });

  test('with fetch: an ID token with another nonce, or for another client, signs nobody in', async () => {
    const through = async (tamper: ((claims: JWTPayload) => JWTPayload) | undefined): Promise<Response> => {
      const { authorize, binding } = await start(relayed);
      relay.tamper = tamper;
      try {
        return await arrive(await signIn(authorize, 'carol', callback), binding);
      } finally {
        relay.tamper = undefined;
      }
    };
    const honest = await through(undefined);
    assert.equal(honest.status, 200, 'the relay alone changes nothing');
    assert.ok(sessionOf(honest));

    const replayed = await through((claims) => ({ ...claims, nonce: 'the-nonce-of-another-sign-in' }));
    assert.equal(replayed.status, 403);
    assert.match(await replayed.text(), /not for this sign-in \(nonce\)/);
    assert.equal(sessionOf(replayed), undefined);

    const foreign = await through((claims) => ({ ...claims, aud: 'another-client' }));
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /issued to another client \(aud\)/);
    assert.equal(sessionOf(foreign), undefined);
  });
});
