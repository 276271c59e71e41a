// A supervised stdio MCP child process: the lowest layer of the local backend.
// It runs, frames, restarts and stops one process (and its process group);
// what the messages mean is decided by the layer above.

import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { backoffDelay } from '../../backoff.ts';
import type { Logger } from '../../observe/log.ts';
import { responseIdOf } from '../../http/jsonrpc.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, tooLargeMessage } from '../../http/message-limit.ts';
import { crashLoopOf } from '../crash-loop.ts';
import { childEnv } from './env.ts';
import { LineSplitter } from './lines.ts';
import { groupAlive, installExitHook, signalGroup, trackGroup, untrackGroup, waitUntil } from './process-group.ts';

export interface ChildOptions {
  /** Names the server in logs, e.g. "everything" or "github/alice". */
  readonly id: string;
  readonly command: string;
  readonly args: readonly string[];
  /** Declared environment, added to an allow-listed part of berth's own. */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly logger: Logger;
  /** False when the child serves MCP over HTTP: its stdout is then log output like stderr. Default true. */
  readonly stdoutMessages?: boolean;
  /** A longer stdout line is dropped (and logged); default 10 MiB. */
  readonly maxLineBytes?: number;
  /** Restart delay: doubles from initialMs up to maxMs, back to initialMs after the child stayed up resetAfterMs. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number; readonly resetAfterMs?: number };
  /** Grace between the stop steps (close stdin, SIGTERM, SIGKILL); default 5 s. */
  readonly stopTimeoutMs?: number;
}

export type ChildState = 'starting' | 'running' | 'backoff' | 'crash-looping' | 'stopping' | 'stopped';

export interface ChildExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly willRestart: boolean;
}

export interface ChildStatus {
  readonly state: ChildState;
  readonly pid?: number;
  readonly restarts: number;
  readonly lastError?: string;
  /** When the current process came up (ms since the epoch). */
  readonly startedAt?: number;
  readonly stderrTail: string[];
}

export interface ChildEvents {
  message: [msg: unknown];
  spawn: [];
  exit: [info: ChildExit];
}

export const MAX_STDIN_QUEUE_BYTES = 64 * 1024 * 1024;
export const STDERR_TAIL_LINES = 50;
export const MAX_STDERR_LINE_BYTES = 4 * 1024;
/** At most this many stderr lines per second reach the log; the rest are counted. */
export const STDERR_LINES_PER_SECOND = 200;
const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000, resetAfterMs: 30_000 };
// As the MCP SDK does: a server gets 2 s to exit after stdin closes, and again after SIGTERM.
const DEFAULT_STOP_TIMEOUT_MS = 2_000;

interface Proc {
  /** Absent when spawn() itself threw. */
  readonly child: ChildProcessWithoutNullStreams | undefined;
  readonly pid: number | undefined;
  spawned: boolean;
  exited: boolean;
  startedAt?: number;
  lastStderrLine?: string;
}

/**
 * A supervised stdio child: newline-delimited JSON on stdin/stdout, stderr into
 * the log, restarts with backoff until stop().
 */
export class StdioChild extends EventEmitter<ChildEvents> {
  #corked = false;
  readonly #options: ChildOptions;
  readonly #log: Logger;
  readonly #backoff: { initialMs: number; maxMs: number; resetAfterMs: number };
  readonly #stopTimeoutMs: number;
  #state: ChildState = 'stopped';
  #proc: Proc | undefined;
  #restarts = 0;
  #restartTimes: number[] = [];
  #crashLooping = false;
  /** Exits in a row without staying up resetAfterMs: what the next restart delay grows with. */
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  /** The failure behind lastError; the process's last stderr line may arrive after its exit. */
  #failure: { description: string; proc: Proc } | undefined;
  readonly #stderrTail: string[] = [];
  #stderrWindowStart = 0;
  #stderrWindowLines = 0;
  #stderrSuppressed = 0;

  constructor(options: ChildOptions) {
    super();
    this.#options = options;
    this.#log = options.logger.child({ server: options.id });
    const backoff = options.backoff;
    this.#backoff = {
      initialMs: Math.max(1, backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs),
      maxMs: Math.max(1, backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs),
      resetAfterMs: backoff?.resetAfterMs ?? DEFAULT_BACKOFF.resetAfterMs,
    };
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  }

  /** Starts the process unless it is already up or being supervised. Ignored while stopping. */
  start(): void {
    if (this.#state === 'stopping') {
      this.#log.warn({ state: this.#state }, 'server start ignored while stopping');
      return;
    }
    if (this.#state !== 'stopped') return;
    this.#spawn();
  }

  /** Writes one JSON line to stdin. False when the process is not running, the message cannot be serialised, or the queue is full. */
  send(message: object): boolean {
    const proc = this.#proc;
    if (this.#state !== 'running' || proc === undefined || proc.exited) return false;
    const stdin = proc.child?.stdin;
    if (stdin === undefined || !stdin.writable) return false;
    let line: string;
    try {
      line = JSON.stringify(message) + '\n';
    } catch (err) {
      this.#log.error({ err }, 'server message not serialisable; dropped');
      return false;
    }
    const bytes = Buffer.byteLength(line);
    if (stdin.writableLength + bytes > MAX_STDIN_QUEUE_BYTES) {
      this.#log.warn({ queuedBytes: stdin.writableLength, bytes, limitBytes: MAX_STDIN_QUEUE_BYTES }, 'server stdin queue full; message dropped');
      return false;
    }
    // Messages sent in one tick go out in one write: a burst of requests costs one syscall.
    if (!this.#corked) {
      this.#corked = true;
      stdin.cork();
      process.nextTick(() => {
        this.#corked = false;
        stdin.uncork();
      });
    }
    stdin.write(line);
    return true;
  }

  status(): ChildStatus {
    const proc = this.#proc;
    const up = proc !== undefined && proc.spawned && !proc.exited;
    return {
      state: this.#state,
      ...(up && proc.pid !== undefined ? { pid: proc.pid } : {}),
      restarts: this.#restarts,
      ...(this.#failure ? { lastError: describeFailure(this.#failure) } : {}),
      ...(up && proc.startedAt !== undefined ? { startedAt: proc.startedAt } : {}),
      stderrTail: [...this.#stderrTail],
    };
  }

  /** Close stdin, then SIGTERM, then SIGKILL the process group, each after stopTimeoutMs; resolves when the group is gone. No restart follows. */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (this.#state === 'stopped') return Promise.resolve();
    this.#stopping = this.#stop().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const proc = this.#proc;
    this.#state = 'stopping';
    // A leader that exited on its own already had its group SIGKILLed (and the
    // pgid may be reused by now): nothing left to signal.
    if (proc !== undefined && proc.pid !== undefined && !proc.exited) {
      const pgid = proc.pid;
      const steps: Array<[string, () => void]> = [
        ['stdin closed', () => proc.child?.stdin.end()],
        ['SIGTERM', () => signalGroup(pgid, 'SIGTERM')],
        ['SIGKILL', () => signalGroup(pgid, 'SIGKILL')],
      ];
      let gone = false;
      for (const [step, act] of steps) {
        this.#log.debug({ pid: pgid, step }, 'server stop step');
        act();
        // The leader's own exit is awaited too, so its 'exit' event precedes the resolution.
        gone = await waitUntil(() => proc.exited && !groupAlive(pgid), this.#stopTimeoutMs);
        if (gone) break;
      }
      untrackGroup(pgid);
      if (!gone) this.#log.error({ pid: pgid }, 'server process group still present after SIGKILL');
    }
    this.#proc = undefined;
    this.#state = 'stopped';
    this.#log.info('server stopped');
  }

  #spawn(): void {
    const { command, args, cwd } = this.#options;
    this.#state = 'starting';
    installExitHook();
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(command, [...args], {
        cwd,
        env: childEnv(this.#options.env),
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      // Rare spawn errors throw synchronously; report them like the asynchronous ones.
      const failed: Proc = { child: undefined, pid: undefined, spawned: false, exited: false };
      this.#proc = failed;
      queueMicrotask(() => this.#onExit(failed, null, null, this.#describeSpawnError(err)));
      return;
    }
    const proc: Proc = { child, pid: child.pid, spawned: false, exited: false };
    this.#proc = proc;
    if (proc.pid !== undefined) trackGroup(proc.pid);

    const stderr = new LineSplitter({ maxBytes: MAX_STDERR_LINE_BYTES, mode: 'truncate', onLine: (line, truncated) => this.#onStderrLine(proc, line, truncated) });
    const stdout =
      this.#options.stdoutMessages === false
        ? new LineSplitter({ maxBytes: MAX_STDERR_LINE_BYTES, mode: 'truncate', onLine: (line, truncated) => this.#onStderrLine(proc, line, truncated) })
        : new LineSplitter({
            maxBytes: this.#options.maxLineBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
            mode: 'drop',
            onLine: (line) => this.#onStdoutLine(proc, line),
            onOverflow: () => this.#log.warn({ pid: proc.pid, limitBytes: this.#options.maxLineBytes ?? DEFAULT_MAX_MESSAGE_BYTES }, 'server stdout line too long; dropped'),
            onDropped: (head, tail) => this.#onDroppedLine(proc, head, tail),
          });
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stdout.on('end', () => stdout.end());
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stderr.on('end', () => {
      stderr.end();
      this.#flushSuppressed();
    });
    child.stdin.on('error', (err) => this.#log.debug({ err, pid: proc.pid }, 'server stdin error'));
    child.stdout.on('error', (err) => this.#log.debug({ err, pid: proc.pid }, 'server stdout error'));
    child.stderr.on('error', (err) => this.#log.debug({ err, pid: proc.pid }, 'server stderr error'));

    child.on('spawn', () => {
      proc.spawned = true;
      proc.startedAt = Date.now();
      if (this.#proc !== proc || this.#state !== 'starting') return;
      this.#state = 'running';
      this.#log.info({ pid: proc.pid, command, args }, 'server started');
      this.#emit('spawn');
    });
    child.on('error', (err) => {
      if (!proc.spawned) this.#onExit(proc, null, null, this.#describeSpawnError(err));
      else this.#log.warn({ err, pid: proc.pid }, 'server process error');
    });
    child.on('exit', (code, signal) => this.#onExit(proc, code, signal, describeExit(code, signal)));
  }

  #onExit(proc: Proc, code: number | null, signal: string | null, description: string): void {
    if (proc.exited) return;
    proc.exited = true;
    if (this.#proc !== proc) return;
    if (this.#state === 'stopping') {
      this.#log.info({ pid: proc.pid, code, signal }, 'server exited');
      this.#emit('exit', { code, signal, willRestart: false });
      return;
    }
    // Whatever the leader left behind in its group is orphaned: take it down too.
    if (proc.pid !== undefined) {
      signalGroup(proc.pid, 'SIGKILL');
      untrackGroup(proc.pid);
    }
    this.#failure = { description, proc };
    const now = Date.now();
    const stayedUp = proc.startedAt !== undefined && now - proc.startedAt >= this.#backoff.resetAfterMs;
    this.#failures = stayedUp ? 1 : this.#failures + 1;
    const delayMs = backoffDelay(this.#failures, this.#backoff);
    const crashLoop = crashLoopOf(this.#restartTimes, now);
    this.#restartTimes = crashLoop.recent;
    // Once crash-looping, a child stays so until it stays up: growing backoff
    // thins restarts out of the window without the server getting any better.
    this.#crashLooping = (this.#crashLooping && !stayedUp) || crashLoop.looping;
    this.#state = this.#crashLooping ? 'crash-looping' : 'backoff';
    const fields = { pid: proc.pid, code, signal, error: describeFailure(this.#failure), restartInMs: delayMs, restarts: this.#restarts };
    if (this.#state === 'crash-looping') this.#log.error(fields, 'server crash-looping');
    else this.#log.warn(fields, 'server exited');
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#state !== 'backoff' && this.#state !== 'crash-looping') return;
      this.#restarts += 1;
      this.#restartTimes.push(Date.now());
      this.#spawn();
    }, delayMs);
    this.#restartTimer.unref();
    this.#emit('exit', { code, signal, willRestart: true });
  }

  #onStdoutLine(proc: Proc, line: Buffer): void {
    if (this.#proc !== proc || proc.exited) return;
    const text = line.toString('utf8');
    if (text.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      this.#log.warn({ pid: proc.pid, line: text.length > 1024 ? `${text.slice(0, 1024)}…` : text }, 'server stdout line is not JSON; dropped');
      return;
    }
    this.#emit('message', msg);
  }

  /**
   * A response too large to frame still answers its request: with an error,
   * so the caller learns why instead of waiting for its deadline.
   */
  #onDroppedLine(proc: Proc, head: Buffer, tail: Buffer): void {
    if (this.#proc !== proc || proc.exited) return;
    const id = responseIdOf(head.toString('utf8'), tail.toString('utf8'));
    if (id === undefined) return;
    const limit = this.#options.maxLineBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#emit('message', { jsonrpc: '2.0', id, error: { code: -32603, message: tooLargeMessage(limit) } });
  }

  /** A throwing listener is a bug above this layer; it must not take the stream handlers (and berth) down. */
  #emit<E extends keyof ChildEvents>(event: E, ...args: ChildEvents[E]): void {
    try {
      (this.emit as (event: E, ...args: ChildEvents[E]) => boolean)(event, ...args);
    } catch (err) {
      this.#log.error({ err, event }, 'server event listener failed');
    }
  }

  #onStderrLine(proc: Proc, line: Buffer, truncated: boolean): void {
    const text = truncated ? `${line.toString('utf8')}…` : line.toString('utf8');
    if (text.trim() !== '') proc.lastStderrLine = text;
    this.#stderrTail.push(text);
    if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
    const now = Date.now();
    if (now - this.#stderrWindowStart >= 1000) {
      this.#flushSuppressed();
      this.#stderrWindowStart = now;
      this.#stderrWindowLines = 0;
    }
    if (this.#stderrWindowLines >= STDERR_LINES_PER_SECOND) {
      this.#stderrSuppressed += 1;
      return;
    }
    this.#stderrWindowLines += 1;
    this.#log.info({ pid: proc.pid, line: text }, 'server stderr');
  }

  #flushSuppressed(): void {
    if (this.#stderrSuppressed === 0) return;
    this.#log.warn({ suppressed: this.#stderrSuppressed }, 'server stderr lines suppressed');
    this.#stderrSuppressed = 0;
  }

  #describeSpawnError(err: unknown): string {
    const { command, cwd } = this.#options;
    const code = (err as NodeJS.ErrnoException).code;
    // spawn reports a missing working directory as ENOENT too.
    if (code === 'ENOENT' && cwd !== undefined && !existsSync(cwd)) return `working directory not found: ${cwd}`;
    if (code === 'ENOENT') return `command not found: ${command}`;
    if (code === 'EACCES') return `command not executable: ${command}`;
    return `cannot start ${command}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** How a child ended, as status and clients see it: `exit code 2`, `killed by SIGKILL`. */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal !== null) return `killed by ${signal}`;
  return `exit code ${code ?? 'unknown'}`;
}

function describeFailure(failure: { description: string; proc: Proc }): string {
  const line = failure.proc.lastStderrLine;
  return line === undefined ? failure.description : `${failure.description}: ${line}`;
}


