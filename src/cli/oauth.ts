import type { AuthorizationStatus } from '../oauth/authorizer.ts';
import { BerthError } from '../errors.ts';
import { exitCode, paint } from './output.ts';
import { berthUrl } from './status.ts';

/** What `GET /api/oauth/<server>` answers: the caller's authorization for one server. */
export type OAuthStatusReport = AuthorizationStatus & { readonly server: string; readonly user: string; readonly connect: string };

/**
 * `berth oauth status <server>`: where discovery and the caller's own
 * authorization stand. The caller is whoever `BERTH_TOKEN` (an API key or
 * access token) names; without it, berth's anonymous loopback user.
 */
export async function runOAuthStatus(server: string, file: string | undefined, options: { url?: string; json?: boolean }, token = process.env['BERTH_TOKEN']): Promise<number> {
  const url = berthUrl(file, options.url);
  let res: Response;
  try {
    res = await fetch(`${url}/api/oauth/${encodeURIComponent(server)}`, { headers: token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new BerthError('berth_unreachable', `cannot reach berth at ${url}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as Partial<OAuthStatusReport> & { error?: { message?: string } };
  if (res.status === 401) throw new BerthError('status_unauthorized', `berth at ${url} needs your credentials: set BERTH_TOKEN to your API key or access token`);
  if (!res.ok) throw new BerthError('berth_unreachable', `berth at ${url} answered ${res.status}: ${body.error?.message ?? 'no reason given'}`);
  if (options.json === true) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return exitCode.ok;
  }
  const out = process.stdout;
  const report = body as OAuthStatusReport;
  out.write(`server ${report.server}  user ${report.user}\n`);
  out.write(`oauth      ${report.mode === 'configured' ? 'configured (oauth block)' : report.mode === 'challenged' ? 'asked for by the upstream (401 Bearer challenge)' : 'not used'}\n`);
  const d = report.discovery;
  if (d !== undefined) out.write(`discovery  ${d.error === undefined ? `authorization server ${d.issuer ?? '?'}` : paint(out, 'red', `${d.error.code}: ${d.error.message}`)}\n`);
  else if (report.mode !== 'none') out.write('discovery  not run yet (it runs when someone presses Authorize)\n');
  if (report.connected) {
    const expires = report.expiresAt === undefined ? 'no expiry given' : `expires ${new Date(report.expiresAt).toISOString()}`;
    out.write(`token      ${paint(out, 'green', 'connected')} at ${report.issuer ?? '?'}; ${report.scope === undefined ? 'no scope named' : `scopes ${report.scope}`}; ${expires}; ${report.refreshable === true ? 'refreshable' : 'not refreshable'}\n`);
  } else if (report.mode !== 'none') {
    out.write(`token      ${paint(out, 'red', 'not connected')}: open ${report.connect} to authorize\n`);
  }
  return exitCode.ok;
}
