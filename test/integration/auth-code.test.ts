// A person signs in through an MCP client: the SDK client's OAuth provider
// runs the authorization-code + PKCE flow against a real authorization server
// (oidc-provider, with dynamic client registration and its dev login and
// consent pages), found through berth's 401 and protected-resource metadata.
// The test only plays the person at the pages; the SDK does every OAuth step.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { TestBerth } from '../helpers/berth.ts';
import { everythingYaml, startTestBerth } from '../helpers/berth.ts';
import type { TestIssuer } from '../helpers/oidc.ts';
import { signIn, startIssuer } from '../helpers/oidc.ts';

/** Nothing listens here: the person's browser would land on it, and the test reads the code off the URL. */
const REDIRECT = 'http://127.0.0.1:1/oauth/callback';

/** An interactive public client, as a desktop MCP client keeps one: everything in memory, the browser a callback. */
class SignInProvider implements OAuthClientProvider {
  readonly #state = randomUUID();
  authorizationUrl: URL | undefined;
  #client: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #verifier: string | undefined;

  get redirectUrl(): string {
    return REDIRECT;
  }

  get clientMetadata(): OAuthClientMetadata {
    return { client_name: 'berth test client', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }

  state(): string {
    return this.#state;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.#client;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.#client = info;
  }

  tokens(): OAuthTokens | undefined {
    return this.#tokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.#tokens = tokens;
  }

  redirectToAuthorization(url: URL): void {
    this.authorizationUrl = url;
  }

  saveCodeVerifier(verifier: string): void {
    this.#verifier = verifier;
  }

  codeVerifier(): string {
    if (this.#verifier === undefined) throw new Error('no code verifier saved');
    return this.#verifier;
  }
}

describe('authorization code + PKCE through berth', () => {
  let issuer: TestIssuer;
  let b: TestBerth;
  let route: string;

  before(async () => {
    issuer = await startIssuer({ interactive: true });
    b = await startTestBerth(everythingYaml('notes', '    access: { users: [ada], scopes: [mcp:write] }\n'), `auth:\n  - type: jwt\n    issuer: ${issuer.issuer}\n`);
    route = `${b.url}/mcp/notes`;
  });
  after(async () => {
    await b?.stop();
    await issuer?.stop();
  });

  /** Connects as the person `login`: the SDK meets the 401, discovers, registers and redirects; the person signs in; the SDK redeems the code. */
  async function connectAs(login: string): Promise<{ client: Client; provider: SignInProvider }> {
    const provider = new SignInProvider();
    const first = new StreamableHTTPClientTransport(new URL(route), { authProvider: provider });
    await assert.rejects(new Client({ name: 'auth-code', version: '1.0.0' }).connect(first), UnauthorizedError, 'the client is sent to sign in');
    assert.ok(provider.authorizationUrl, 'the SDK sent the person to the authorization server');
    const back = await signIn(provider.authorizationUrl, login, REDIRECT);
    assert.equal(back.searchParams.get('state'), provider.state(), 'the state comes back');
    await first.finishAuth(back.searchParams.get('code') ?? assert.fail(`no code in ${back.href}`));
    const client = new Client({ name: 'auth-code', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(route), { authProvider: provider }));
    return { client, provider };
  }

  test('the SDK client signs ada in: 401 → metadata → registration → login and consent → code → token for the route', async () => {
    const { client, provider } = await connectAs('ada');
    const asked = provider.authorizationUrl!;
    assert.equal(asked.origin, issuer.issuer, 'berth named the authorization server');
    assert.equal(asked.searchParams.get('resource'), route, 'the token is asked for berth’s route URL');
    assert.equal(asked.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(asked.searchParams.get('code_challenge'), 'PKCE');
    assert.match(asked.searchParams.get('scope') ?? '', /mcp:write/, 'the scope from the 401 challenge');
    assert.ok(provider.clientInformation()?.client_id, 'the client registered itself');
    const token = decodeJwt(provider.tokens()?.access_token ?? assert.fail('no access token'));
    assert.equal(token.aud, route);
    assert.equal(token.iss, issuer.issuer);
    assert.equal(token.sub, 'ada', 'the token names the person who signed in');
    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'signed in' } });
    assert.match(JSON.stringify(echoed.content), /signed in/);
    await client.close();
  });

  test('a person the access rule does not name signs in just as well, and is refused by berth', async () => {
    const provider = new SignInProvider();
    const first = new StreamableHTTPClientTransport(new URL(route), { authProvider: provider });
    await assert.rejects(new Client({ name: 'auth-code', version: '1.0.0' }).connect(first), UnauthorizedError);
    const back = await signIn(provider.authorizationUrl!, 'eve', REDIRECT);
    await first.finishAuth(back.searchParams.get('code')!);
    assert.equal(decodeJwt(provider.tokens()!.access_token).sub, 'eve');
    const client = new Client({ name: 'auth-code', version: '1.0.0' });
    await assert.rejects(client.connect(new StreamableHTTPClientTransport(new URL(route), { authProvider: provider })), /403|may not use server notes/);
  });
});
