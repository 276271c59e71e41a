// Process groups: every child leads its own, so stopping it reaches its
// grandchildren (npx starts node, uvx starts python) and a dying berth can take them along.
import { readdirSync, readFileSync } from 'node:fs';

const GROUP_POLL_MS = 25;

// Every live process group, so a dying berth can take them along.
const liveGroups = new Set<number>();

/** Remembers a started group, so killAllChildren reaches it. */
export function trackGroup(pgid: number): void {
  liveGroups.add(pgid);
}

export function untrackGroup(pgid: number): void {
  liveGroups.delete(pgid);
}
let exitHookInstalled = false;

/** SIGKILL every process group this module started. Synchronous: safe in process.on('exit'). */
export function killAllChildren(): void {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  liveGroups.clear();
}

export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    // EPERM: the group exists, but (some of) it is no longer ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllChildren);
}

/** Polls `done` until true (resolves true) or `timeoutMs` passed (false). Not unref'd: stop() awaits it. */
export function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const check = (): void => {
      if (done()) resolve(true);
      else if (Date.now() >= deadline) resolve(false);
      else setTimeout(check, Math.min(GROUP_POLL_MS, Math.max(1, deadline - Date.now())));
    };
    check();
  });
}

/**
 * Whether the group still has a member that is not a zombie. Zombies count as
 * gone: they are dead, and reaping orphans is init's job, which some inits do
 * late and a berth running as PID 1 in a container never does.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  const leader = procStat(String(pgid));
  if (leader !== undefined && leader.pgrp === pgid && leader.state !== 'Z' && leader.state !== 'X') return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    const first = entry.charCodeAt(0);
    if (first < 48 || first > 57) continue;
    const stat = procStat(entry);
    if (stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
  }
  return false;
}

/** State and process group from /proc/<pid>/stat ("pid (comm) state ppid pgrp ..."). */
function procStat(pid: string): { state: string; pgrp: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', pgrp: Number(fields[2]) };
}
