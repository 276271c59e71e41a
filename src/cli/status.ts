import { loadConfigFile } from '../config/load.ts';
import { BerthError } from '../errors.ts';
import { exitCode, paint } from './output.ts';
import type { ServerStatus, StatusReport } from './status-model.ts';

/**
 * Where a running berth listens: the URL given, else the config's listen
 * settings (loopback when bound to all addresses), else with no config the
 * defaults, http://127.0.0.1:8080.
 */
export function berthUrl(file: string | undefined, override?: string): string {
  if (override !== undefined) return override.replace(/\/$/, '');
  const listen = file === undefined ? undefined : loadConfigFile(file).config.listen;
  const host = listen?.host === undefined || listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '[::1]' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return `http://${host}:${listen?.port ?? 8080}`;
}

/**
 * The running berth's /status. With downstream auth configured, /status needs
 * a user of the admin group: `BERTH_TOKEN` carries that user's API key or
 * access token (an environment variable, so it stays out of `ps`).
 */
export async function fetchStatus(url: string, token = process.env['BERTH_TOKEN']): Promise<StatusReport> {
  const hasToken = token !== undefined && token !== '';
  let res: Response;
  try {
    const headers: Record<string, string> = hasToken ? { authorization: `Bearer ${token}` } : {};
    res = await fetch(`${url}/status`, { headers, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new BerthError('berth_unreachable', `cannot reach berth at ${url}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`);
  }
  if (res.status === 401 || res.status === 403) {
    const what = res.status === 401 ? (hasToken ? 'refused the credentials in BERTH_TOKEN' : 'needs credentials') : 'allows /status only to its admin group';
    throw new BerthError('status_unauthorized', `berth at ${url} ${what} for /status: set BERTH_TOKEN to an API key or access token of a user in the admin group`);
  }
  if (!res.ok) throw new BerthError('berth_unreachable', `berth at ${url} answered ${res.status} for /status`);
  return (await res.json()) as StatusReport;
}

/** `berth status`: one line per server and instance. */
export async function runStatus(file: string | undefined, options: { url?: string; json?: boolean }): Promise<number> {
  const report = await fetchStatus(berthUrl(file, options.url));
  if (options.json === true) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return exitCode.ok;
  }
  const out = process.stdout;
  const reload = report.lastReload;
  out.write(`config ${report.config ?? '-'}  generation ${report.generation}  backend ${report.backend}\n`);
  const events = report.backendEvents;
  if (events?.state === 'reconnecting') out.write(`${paint(out, 'red', 'backend events lost')} since ${events.since}, re-subscribing: ${events.lastError ?? 'unknown error'}\n`);
  if (reload !== undefined) {
    out.write(`last reload ${reload.at} (${reload.reason}): ${reload.ok ? paint(out, 'green', 'ok') : paint(out, 'red', reload.result)}\n`);
    for (const e of reload.errors) out.write(`  ${paint(out, 'red', 'error')} ${e}\n`);
  }
  const rows = statusRows(report);
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  for (const r of rows) out.write(`${r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ').trimEnd()}\n`);
  // A failing instance's own last words, under the table: what an operator reads first.
  for (const s of report.servers) {
    for (const i of s.instances) {
      if (i.logTail === undefined) continue;
      out.write(`\n${s.name} ${i.detail ?? i.id} (${i.failure ?? i.state}), last log lines:\n`);
      for (const line of i.logTail) out.write(`  ${line}\n`);
    }
  }
  return exitCode.ok;
}

/** The table `berth status` prints, header first: a row per instance, or one for a server without instances. */
export function statusRows(report: StatusReport): string[][] {
  const rows: string[][] = [['SERVER', 'KIND', 'INSTANCE', 'STATE', 'RESTARTS', 'SESSIONS', 'LAST ERROR']];
  for (const s of report.servers) {
    const kind = s.scope === undefined ? s.kind : `${s.kind}/${s.scope}`;
    if (s.instances.length === 0) {
      const { state, error } = withoutInstances(s);
      rows.push([s.name, kind, '-', state, '-', String(s.sessions), error]);
    }
    for (const i of s.instances) rows.push([s.name, kind, i.user ?? i.detail ?? '-', i.state, String(i.restarts), String(i.sessions), i.lastError ?? i.note ?? s.lastError ?? '']);
  }
  return rows;
}

/** A server without instances: a remote's connection (or its users' connections), a stopped shared server, or nothing. */
function withoutInstances(s: ServerStatus): { state: string; error: string } {
  if (s.connection !== undefined) return { state: s.connection.state, error: s.connection.lastError ?? s.lastError ?? '' };
  const users = s.userConnections;
  if (users !== undefined) {
    const state = users.total === 0 ? 'no user connected' : `${users.connected}/${users.total} users connected${users.down > 0 ? `, ${users.down} down` : ''}`;
    return { state, error: users.lastError ?? s.lastError ?? '' };
  }
  return { state: s.kind === 'hosted' && s.scope === 'shared' ? 'stopped' : '-', error: s.lastError ?? '' };
}
