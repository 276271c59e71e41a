import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isBerthError } from '../errors.ts';
import { writeJson } from '../http/json-io.ts';
import type { Identity } from '../identity.ts';
import { browserSessions, TICKET_PARAM } from './browser.ts';

/**
 * How a client can be sent to the /connect page:
 * - `url-elicitation`: a 2025-11-25 client that declared `elicitation.url`: error -32042;
 * - `input-required`: a 2026-07-28 `tools/call`, `prompts/get` or `resources/read` whose envelope
 *   declares `elicitation.url`: an `input_required` result (that revision retired -32042);
 * - `message`: any other request: a plain error whose message names the URL.
 */
export type CredentialPrompt = 'message' | 'url-elicitation' | 'input-required';

/** Where a user supplies a server's credentials and authorizes it: /connect/<server>. */
export const CONNECT_PREFIX = '/connect/';

/** -32042 URLElicitationRequiredError (MCP 2025-11-25 only: 2026-07-28 forbids it). */
export const URL_ELICITATION_REQUIRED = -32042;
/** The plain error: a server error in the implementation-defined range, with the URL in message and data. */
export const CREDENTIALS_MISSING = -32000;

export type MissingCredentials =
  | { readonly kind: 'error'; readonly error: { readonly code: number; readonly message: string; readonly data: Readonly<Record<string, unknown>> } }
  | { readonly kind: 'result'; readonly result: InputRequiredResult };

export interface InputRequiredResult {
  readonly resultType: 'input_required';
  readonly inputRequests: Readonly<Record<string, { readonly method: 'elicitation/create'; readonly params: { readonly mode: 'url'; readonly message: string; readonly url: string } }>>;
}

/** What a caller lacks for a server: values they supply on /connect, an authorization there, or both. */
export interface Missing {
  readonly server: string;
  readonly names: readonly string[];
  /** The server's OAuth authorization server must be asked (again) for a token. */
  readonly authorization?: boolean;
}

/**
 * What a client gets when it calls a server whose required `fromUser`
 * credentials it has not supplied, or that needs the user's OAuth
 * authorization. The 2026 result has no `requestState`: on the retry berth
 * simply looks at the store again.
 */
export function missingCredentialsError(missing: Missing, connectUrl: string, prompt: CredentialPrompt, browserUrl?: string): MissingCredentials {
  const { server, names } = missing;
  const what = [...(names.length === 0 ? [] : [`credentials you have not supplied (${names.join(', ')})`]), ...(missing.authorization === true ? ['your authorization at its OAuth authorization server'] : [])].join(' and ');
  const inBrowser = browserUrl === undefined ? '' : ` (from a browser, open ${browserUrl}: it signs you in there, once, within 5 minutes)`;
  const message = `server ${server} needs ${what}: open ${connectUrl} to ${missing.authorization === true ? 'authorize' : 'enter them'}, then try again${inBrowser}`;
  // A client shows the elicitation's URL in a browser, which cannot send the user's key: the one-time link opens the page.
  const ask = { mode: 'url', message: missing.authorization === true ? `Authorize berth to use ${server} for you` : `Enter your credentials for ${server} (${names.join(', ')})`, url: browserUrl ?? connectUrl } as const;
  switch (prompt) {
    case 'url-elicitation':
      return { kind: 'error', error: { code: URL_ELICITATION_REQUIRED, message, data: { elicitations: [{ ...ask, elicitationId: randomUUID() }] } } };
    case 'input-required':
      return { kind: 'result', result: { resultType: 'input_required', inputRequests: { [`berth-credentials-${server}`]: { method: 'elicitation/create', params: ask } } } };
    case 'message':
      return { kind: 'error', error: { code: CREDENTIALS_MISSING, message, data: { server, missing: names, ...(missing.authorization === true ? { authorization: true } : {}), connectUrl, ...(browserUrl === undefined ? {} : { browserUrl }) } } };
  }
}

/**
 * The prompt a request can take, from its protocol version and the client's
 * capabilities (declared at initialize before 2026-07-28, per request from then on).
 */
export function credentialPromptFor(protocolVersion: string, capabilities: unknown): CredentialPrompt {
  const elicitation = (capabilities as { elicitation?: { url?: unknown } } | undefined)?.elicitation;
  if (elicitation?.url === undefined) return 'message';
  if (protocolVersion >= '2026-07-28') return 'input-required';
  return protocolVersion >= '2025-11-25' ? 'url-elicitation' : 'message';
}

/** The only requests a 2026-07-28 server may answer with `input_required` (MRTR). */
const INPUT_REQUIRED_METHODS: ReadonlySet<unknown> = new Set(['tools/call', 'prompts/get', 'resources/read']);

/**
 * The prompt one JSON-RPC message can take: a 2026-07-28 request's envelope
 * says, or an initialize does; anything else (a passed-through remote's
 * message when berth has not seen the client's initialize) gets the plain error.
 * So does a 2026-07-28 request that may not end `input_required`
 * (`server/discover`, `tools/list`): the revision has no other URL prompt.
 */
export function credentialPromptOf(message: unknown): CredentialPrompt {
  const m = (typeof message === 'object' && message !== null ? message : {}) as { method?: unknown; params?: { protocolVersion?: unknown; capabilities?: unknown; _meta?: Record<string, unknown> } };
  const meta = m.params?._meta;
  if (meta?.['io.modelcontextprotocol/protocolVersion'] !== undefined) {
    const prompt = credentialPromptFor(String(meta['io.modelcontextprotocol/protocolVersion']), meta['io.modelcontextprotocol/clientCapabilities']);
    return prompt === 'input-required' && !INPUT_REQUIRED_METHODS.has(m.method) ? 'message' : prompt;
  }
  if (m.method === 'initialize') return credentialPromptFor(String(m.params?.protocolVersion ?? ''), m.params?.capabilities);
  return 'message';
}

/** Answers a request in-band (HTTP 200, the request's id) with a link to the page where the user supplies the values. */
export function sendMissingCredentials(res: ServerResponse, id: string | number | null, missing: Missing, connectUrl: string, prompt: CredentialPrompt, browserUrl?: string): void {
  const answer = missingCredentialsError(missing, connectUrl, prompt, browserUrl);
  writeJson(res, 200, answer.kind === 'error' ? { jsonrpc: '2.0', id, error: answer.error } : { jsonrpc: '2.0', id, result: answer.result });
}

/**
 * The message of a state error reading the caller's own saved values (it
 * names the value and the remedy, and nothing of anyone else's), or undefined
 * for any other failure, which stays berth's own business.
 */
export function savedValueProblem(err: unknown): string | undefined {
  return isBerthError(err) && err.code.startsWith('state_') ? err.message : undefined;
}

/** The /connect page of a server under berth's public base URL (which may carry a path). */
export function connectUrlOf(baseUrl: string, server: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${CONNECT_PREFIX}${server}`;
}

/** The page with a one-time ticket that opens it in a browser as `identity`, which cannot send its key on a navigation (see BrowserSessions). */
export function browserUrlOf(connectUrl: string, server: string, identity: Identity): string {
  return `${connectUrl}?${TICKET_PARAM}=${browserSessions.ticket(identity, server)}`;
}
