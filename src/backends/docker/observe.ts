// A container as berth reports it: the daemon's state in the contract's words.
import type { FailureClass, InstanceState, ObservedInstance } from '../backend.ts';
import type { ContainerInspectInfo } from './daemon.ts';
import { crashLoopOf } from '../crash-loop.ts';
import { LABELS } from '../labels.ts';

/** What berth remembers about a container beyond what the daemon says (lost on restart, which is fine). */
export interface History {
  /** When berth (re)started it, ms since the epoch, newest last. */
  readonly starts: readonly number[];
}

export function observeContainer(info: ContainerInspectInfo, history: History | undefined, now: number): ObservedInstance {
  const labels = info.Config.Labels ?? {};
  const state = info.State;
  const restarts = Math.max(0, (history?.starts.length ?? 0) - 1) + (info.RestartCount ?? 0);
  const base = {
    id: info.Id,
    owner: labels[LABELS.owner] ?? '',
    unit: labels[LABELS.server] ?? '',
    specHash: labels[LABELS.specHash] ?? '',
    replica: Number(labels[LABELS.replica] ?? 0),
    restarts,
    detail: info.Name.replace(/^\//, ''),
    ...(labels[LABELS.user] === undefined ? {} : { userHash: labels[LABELS.user] }),
  };
  if (state.Running && !state.Restarting) return { ...base, state: 'running', startedAt: state.StartedAt };
  if (state.Restarting) return { ...base, state: 'backoff' };
  if (state.Status === 'removing') return { ...base, state: 'stopping' };
  const failure = failureOf(info, history, now);
  if (failure === undefined) return { ...base, state: 'creating' };
  const stateOf: Record<FailureClass, InstanceState> = {
    'crash-loop': 'crash-looping',
    'oom-killed': 'exited',
    exited: 'exited',
    'start-failed': 'failed',
    'image-missing': 'failed',
    pulling: 'creating',
    unschedulable: 'failed',
    'insufficient-capacity': 'failed',
    'config-error': 'failed',
  };
  return { ...base, state: stateOf[failure.kind], failure: failure.kind, lastError: failure.message };
}

function failureOf(info: ContainerInspectInfo, history: History | undefined, now: number): { kind: FailureClass; message: string } | undefined {
  const state = info.State;
  if (state.Status === 'created') {
    // Created and never started, or a start the daemon refused (a missing executable, a bad mount).
    return state.Error === '' ? undefined : { kind: 'start-failed', message: state.Error };
  }
  const limit = info.HostConfig.Memory ?? 0;
  // Docker 20.10 on cgroup v2 does not always set OOMKilled: a SIGKILL (137) under a memory limit
  // that berth did not send (berth stops with SIGTERM first) is the kernel's OOM killer.
  if (state.OOMKilled || (limit > 0 && state.ExitCode === 137 && !state.Running)) {
    return { kind: 'oom-killed', message: limit > 0 ? `killed: out of memory (limit ${limit} bytes)` : 'killed: out of memory' };
  }
  if (state.Error !== '') return { kind: 'start-failed', message: state.Error };
  const message = `exited with code ${state.ExitCode}`;
  return { kind: crashLoopOf(history?.starts ?? [], now).looping ? 'crash-loop' : 'exited', message };
}

/**
 * Splits the daemon's log stream into lines. Without a TTY each chunk comes
 * in a frame: 1 byte stream, 3 zero bytes, 4 bytes big-endian length.
 */
export function logLines(raw: Buffer): string[] {
  const framed = raw.length >= 8 && (raw[0] === 1 || raw[0] === 2) && raw[1] === 0 && raw[2] === 0 && raw[3] === 0;
  let text = '';
  if (framed) {
    let at = 0;
    while (at + 8 <= raw.length) {
      const size = raw.readUInt32BE(at + 4);
      text += raw.subarray(at + 8, at + 8 + size).toString('utf8');
      at += 8 + size;
    }
  } else {
    text = raw.toString('utf8');
  }
  return text.split('\n').filter((line) => line !== '');
}
