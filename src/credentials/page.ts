import type { ServerResponse } from 'node:http';
import type { UserCredential } from '../desired/types.ts';
import { CSRF_FIELD, OAUTH_FIELD, REMOVE_FIELD } from './csrf.ts';

/** What to paste into one MCP client to reach this server (see `berth connect`). */
export interface ClientSnippet {
  readonly label: string;
  /** Where the client keeps the file. */
  readonly where: string;
  readonly text: string;
}

export interface ConnectPage {
  readonly server: string;
  readonly user: string;
  readonly fields: readonly UserCredential[];
  /** Names the user has saved; their values are never shown. */
  readonly saved: ReadonlySet<string>;
  readonly csrf: string;
  readonly notice?: { readonly kind: 'ok' | 'error'; readonly text: string };
  /** The server takes an OAuth token berth obtains for the user: where that stands. */
  readonly authorization?: AuthorizationView;
  /** Client snippets shown at the end, when the server offers them. */
  readonly snippets?: readonly ClientSnippet[];
}

export interface AuthorizationView {
  readonly connected: boolean;
  /** e.g. "scopes repo read:org, expires 14:05 UTC" */
  readonly detail?: string;
  /** The token is shared by everyone (`perUser: false`); only the admin group manages it. */
  readonly shared: boolean;
  readonly mayManage: boolean;
}

/** Response headers of every HTML answer: nothing runs, nothing frames it, nothing is cached. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // Not no-referrer: with it Chromium posts the form with `Origin: null`, which the origin check refuses.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}
h1{font-size:1.4rem}.field{margin-bottom:.4rem}label{display:block;font-weight:600;margin-top:1.2rem}
.desc{color:#57606a;font-size:.9rem;margin:.1rem 0 .3rem}input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.45rem;font:inherit;border:1px solid #8c959f;border-radius:4px}
.state{font-size:.85rem;margin-left:.5rem;font-weight:400}.saved{color:#1a7f37}.missing{color:#9a6700}
.notice{padding:.6rem .8rem;border-radius:4px}.ok{background:#dafbe1}.error{background:#ffebe9}
button{margin-top:1.4rem;padding:.45rem 1rem;font:inherit}button.remove{margin:.3rem 0 0;padding:.1rem .5rem;font-size:.85rem}
h2{font-size:1.1rem;margin-top:2rem}summary{cursor:pointer;margin:.3rem 0}pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.85rem}`;

/** The /connect/<server> page: one input per field, a saved marker instead of saved values. */
export function renderConnectPage(page: ConnectPage): string {
  const fields = page.fields.map((f) => renderField(f, page.saved.has(f.name))).join('\n');
  const csrf = `<input type="hidden" name="${CSRF_FIELD}" value="${escapeHtml(page.csrf)}">`;
  const notice = page.notice === undefined ? '' : `<p class="notice ${page.notice.kind}" role="status">${escapeHtml(page.notice.text)}</p>`;
  const values =
    page.fields.length === 0
      ? ''
      : `<p>Values you save are stored for you only and never shown again; leave a field empty to keep its saved value.</p>
<form id="save" method="post" autocomplete="off">
${csrf}
${fields}
<button type="submit">Save</button>
</form>
<form id="forget" method="post">${csrf}</form>
`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Connect ${escapeHtml(page.server)} · berth</title><style>${STYLE}</style></head>
<body><h1>Connect ${escapeHtml(page.server)}</h1>
<p>Signed in as <strong>${escapeHtml(page.user)}</strong>.</p>
${notice}
${page.authorization === undefined ? '' : renderAuthorization(page.authorization, csrf)}${values}${renderSnippets(page.snippets ?? [])}</body></html>
`;
}

/** One collapsed block per client: its label, where the file is, and the text to paste. */
function renderSnippets(snippets: readonly ClientSnippet[]): string {
  if (snippets.length === 0) return '';
  const blocks = snippets.map((s) => `<details><summary>${escapeHtml(s.label)}: ${escapeHtml(s.where)}</summary><pre>${escapeHtml(s.text)}</pre></details>`);
  return `<h2>Connect a client</h2>\n<p>Paste one of these into your MCP client. Your API key is never part of it: the client asks for it or reads it from BERTH_API_KEY.</p>\n${blocks.join('\n')}\n`;
}

function renderAuthorization(view: AuthorizationView, csrf: string): string {
  const whose = view.shared ? 'berth\'s shared connection (used for everyone)' : 'your connection';
  const state = view.connected ? `<p id="oauth-state" class="saved">Connected${view.detail === undefined ? '' : ` (${escapeHtml(view.detail)})`}.</p>` : '<p id="oauth-state" class="missing">Not connected.</p>';
  const button = !view.mayManage
    ? '<p>Only a member of the admin group can change it.</p>'
    : view.connected
      ? `<form id="oauth" method="post">${csrf}<button type="submit" name="${OAUTH_FIELD}" value="disconnect">Disconnect</button> <button type="submit" name="${OAUTH_FIELD}" value="authorize">Authorize again</button></form>`
      : `<form id="oauth" method="post">${csrf}<button type="submit" name="${OAUTH_FIELD}" value="authorize">Authorize</button></form>`;
  return `<h2>Authorization</h2>\n<p>This server asks for an OAuth authorization; berth keeps the token, encrypted, as ${whose}, and never shows it to your MCP client.</p>\n${state}\n${button}\n`;
}

function renderField(field: UserCredential, saved: boolean): string {
  const id = `f-${escapeHtml(field.name)}`;
  const state = saved ? '<span class="state saved">saved</span>' : field.required ? '<span class="state missing">required, not set</span>' : '<span class="state">optional, not set</span>';
  const description = field.description === undefined ? '' : `<p class="desc" id="${id}-desc">${escapeHtml(field.description)}</p>`;
  const input = `<input id="${id}" name="${escapeHtml(field.name)}" type="${field.sensitive ? 'password' : 'text'}"${field.required && !saved ? ' required' : ''}${description === '' ? '' : ` aria-describedby="${id}-desc"`} placeholder="${saved ? '(saved; type to replace)' : ''}">`;
  // In the second form: Enter in a field submits the first button of its own form, which must be Save.
  const remove = saved ? `<button class="remove" type="submit" form="forget" name="${REMOVE_FIELD}" value="${escapeHtml(field.name)}">Forget</button>` : '';
  return `<div class="field"><label for="${id}">${escapeHtml(field.name)}${state}</label>\n${description}\n${input}\n${remove}</div>`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function sendPage(res: ServerResponse, status: number, html: string, headers: Readonly<Record<string, string | readonly string[]>> = {}): void {
  res.writeHead(status, { ...PAGE_HEADERS, 'content-length': Buffer.byteLength(html), ...headers });
  res.end(html);
}

export function simplePage(title: string, text: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} · berth</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>\n`;
}

/** Sends the browser on to `url` by a refresh the page's CSP allows, with a link (`#continue`) for when it does not go. */
export function onwardPage(title: string, url: string, link: string, after: string): string {
  const href = escapeHtml(url);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${href}"><title>${escapeHtml(title)} · berth</title></head><body><h1>${escapeHtml(title)}</h1><p><a id="continue" href="${href}">${escapeHtml(link)}</a>${escapeHtml(after)}</p></body></html>\n`;
}
