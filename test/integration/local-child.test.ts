// StdioChild against real child processes (test/fixtures/children, the python
// echo server behind the uvx shim): framing, restarts, stop escalation, orphans.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { StdioChild, MAX_STDIN_QUEUE_BYTES } from '../../src/backends/local/child.ts';
import { childEnv } from '../../src/backends/local/env.ts';
import { commandFor } from '../../src/backends/runtime.ts';
import { LineSplitter } from '../../src/backends/local/lines.ts';
import { killAllChildren } from '../../src/backends/local/process-group.ts';
import type { ChildExit, ChildOptions } from '../../src/backends/local/child.ts';
import type { UnitSpec } from '../../src/desired/types.ts';
import { waitFor } from '../helpers/wait.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const childScript = (name: string): string => join(fixtures, 'children', `${name}.ts`);
const settings = { values: {}, sensitive: [], fromUser: [] };

interface LogLine {
  level: number;
  msg: string;
  server?: string;
  [field: string]: unknown;
}

/** A pino logger whose lines land in `lines`, parsed. */
function captureLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = { write: (s: string) => lines.push(JSON.parse(s) as LogLine) };
  return { logger: pino({ level: 'debug', base: undefined }, destination), lines };
}

const started: StdioChild[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop()));
});

type Harness = { child: StdioChild; lines: LogLine[]; messages: unknown[]; exits: ChildExit[]; spawns: number[]; exitTimes: number[] };

function startChild(options: Partial<ChildOptions> & { command: string }): Harness {
  const { logger, lines } = captureLogger();
  const child = new StdioChild({ id: 'test', args: [], env: {}, logger, ...options });
  const h: Harness = { child, lines, messages: [], exits: [], spawns: [], exitTimes: [] };
  child.on('message', (m) => h.messages.push(m));
  child.on('spawn', () => h.spawns.push(Date.now()));
  child.on('exit', (info) => {
    h.exits.push(info);
    h.exitTimes.push(Date.now());
  });
  started.push(child);
  child.start();
  return h;
}

function startNodeChild(name: string, options: Partial<ChildOptions> = {}): Harness {
  return startChild({ command: process.execPath, args: [childScript(name), ...(options.args ?? [])], ...options });
}

/** Sends a request and resolves with the message carrying its id. */
async function request(h: Harness, message: { id: number | string; [k: string]: unknown }, timeoutMs = 5_000): Promise<Record<string, unknown>> {
  assert.equal(h.child.send({ jsonrpc: '2.0', ...message }), true, 'send accepted');
  return waitFor(() => h.messages.find((m) => (m as { id?: unknown }).id === message.id) as Record<string, unknown> | undefined, {
    timeoutMs,
    message: `reply to ${String(message.id)}`,
  });
}

/** Whether `pid` is a live process: it exists and is not a zombie waiting to be reaped. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ESRCH');
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

/**
 * Waits until kill(pid, 0) throws ESRCH. A killed orphan lingers as a zombie
 * until init reaps it, which some inits (this sandbox's) do only every second or two.
 */
async function assertGone(pid: number, what: string): Promise<void> {
  assert.equal(isRunning(pid), false, `${what} ${pid} still running`);
  await waitFor(
    () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ESRCH';
      }
    },
    { timeoutMs: 10_000, message: `${what} ${pid} to be reaped (ESRCH)` },
  );
}

const running = (h: Harness) => waitFor(() => h.child.status().state === 'running', { message: 'state running' });

/** Waits for a stderr line matching `re` and returns its first capture groups. */
async function stderrMatch(h: Harness, re: RegExp): Promise<RegExpMatchArray> {
  return waitFor(() => h.child.status().stderrTail.map((l) => l.match(re)).find((m) => m !== null), { message: `stderr ${re}` });
}

describe('StdioChild messaging', () => {
  test('a request round-trips and the process reports as running', async () => {
    const h = startNodeChild('echo', { id: 'everything' });
    await running(h);
    const reply = await request(h, { id: 1, method: 'echo', params: { hello: 'world' } });
    assert.deepEqual(reply, { jsonrpc: '2.0', id: 1, result: { hello: 'world' } });
    const status = h.child.status();
    assert.equal(typeof status.pid, 'number');
    assert.equal(typeof status.startedAt, 'number');
    assert.equal(status.restarts, 0);
    assert.equal(status.lastError, undefined);
    assert.equal(h.spawns.length, 1);
    const ready = await stderrMatch(h, /^echo child (\d+) ready$/);
    assert.equal(Number(ready[1]), status.pid);
    const logged = h.lines.find((l) => l.msg === 'server stderr');
    assert.equal(logged?.server, 'everything');
    assert.equal(logged?.['line'], `echo child ${status.pid} ready`);
  });

  test('start() is idempotent', async () => {
    const h = startNodeChild('echo');
    h.child.start();
    await running(h);
    h.child.start();
    await request(h, { id: 'x', method: 'echo' });
    assert.equal(h.spawns.length, 1);
  });

  test('messages dribbled across many writes with CRLF are reassembled', async () => {
    const h = startNodeChild('echo');
    await running(h);
    const reply = await request(h, { id: 7, method: 'chunked' });
    assert.deepEqual(reply['result'], { text: 'ünïcödé split across writes' });
    const second = await waitFor(() => h.messages.find((m) => (m as { id?: unknown }).id === '7-b'), { message: 'second message' });
    assert.deepEqual(second, { jsonrpc: '2.0', id: '7-b', result: 'second' });
  });

  test('a non-JSON stdout line is logged at warn and dropped; blank lines are skipped', async () => {
    const h = startNodeChild('echo');
    await running(h);
    const before = h.messages.length;
    const reply = await request(h, { id: 2, method: 'noise' });
    assert.equal(reply['result'], 'after noise');
    assert.equal(h.messages.length, before + 1);
    const warn = h.lines.find((l) => l.msg === 'server stdout line is not JSON; dropped');
    assert.equal(warn?.level, 40);
    assert.equal(warn?.['line'], 'this is not json');
  });

  test('stderr keeps a ring of the last 50 lines, each capped at 4 KiB', async () => {
    const h = startNodeChild('echo');
    await running(h);
    await request(h, { id: 1, method: 'stderr', params: { lines: 60, longBytes: 10_000 } });
    await waitFor(() => h.child.status().stderrTail.at(-1)?.startsWith('LLL'), { message: 'the long stderr line' });
    const tail = h.child.status().stderrTail;
    assert.equal(tail.length, 50);
    assert.equal(tail[0], 'line 12');
    assert.equal(tail.at(-1), `${'L'.repeat(4096)}…`);
    const logged = h.lines.filter((l) => l.msg === 'server stderr').map((l) => l['line']);
    assert.ok(logged.includes('line 60'));
  });

  test('a throwing listener is logged and does not break the child', async () => {
    const h = startNodeChild('echo');
    h.child.on('message', () => {
      throw new Error('listener bug');
    });
    await running(h);
    await request(h, { id: 1, method: 'echo' });
    await request(h, { id: 2, method: 'echo' });
    assert.equal(h.lines.filter((l) => l.msg === 'server event listener failed').length, 2);
    assert.equal(h.child.status().state, 'running');
  });

  test('send() is false when not running and never throws', async () => {
    const { logger } = captureLogger();
    const idle = new StdioChild({ id: 'idle', command: process.execPath, args: [childScript('echo')], env: {}, logger });
    assert.equal(idle.send({ id: 1 }), false);
    assert.equal(idle.status().state, 'stopped');
    await idle.stop();

    const h = startNodeChild('echo');
    await running(h);
    assert.equal(h.child.send({ big: 1n }), false, 'unserialisable message');
    await h.child.stop();
    assert.equal(h.child.send({ id: 2 }), false, 'after stop');
  });

  test('the environment is the allow-list plus the declared values', async () => {
    const saved = { ...process.env };
    process.env['BERTH_TEST_SECRET'] = 'hunter2';
    process.env['NODE_OPTIONS'] = '--no-warnings';
    process.env['npm_config_registry'] = 'http://127.0.0.1:9/';
    process.env['no_proxy'] = 'example.invalid';
    try {
      const h = startNodeChild('echo', { env: { DECLARED: 'yes', HOME: '/declared-home' } });
      await running(h);
      const env = (await request(h, { id: 1, method: 'env' }))['result'] as Record<string, string>;
      assert.equal(env['DECLARED'], 'yes');
      assert.equal(env['HOME'], '/declared-home', 'declared values win');
      assert.equal(env['PATH'], process.env['PATH']);
      assert.equal(env['npm_config_registry'], 'http://127.0.0.1:9/');
      assert.equal(env['no_proxy'], 'example.invalid');
      assert.equal(env['BERTH_TEST_SECRET'], undefined);
      assert.equal(env['NODE_OPTIONS'], undefined);
    } finally {
      for (const name of ['BERTH_TEST_SECRET', 'NODE_OPTIONS', 'npm_config_registry', 'no_proxy']) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
  });

  test('childEnv keeps only allow-listed names', () => {
    const env = childEnv({ X: '1' }, { PATH: '/bin', AWS_SECRET_ACCESS_KEY: 's', HTTPS_PROXY: 'http://p', NPM_CONFIG_CACHE: '/c', UV_CACHE_DIR: '/u', NODE_OPTIONS: '-r x', TZ: 'UTC' });
    assert.deepEqual(env, { PATH: '/bin', HTTPS_PROXY: 'http://p', NPM_CONFIG_CACHE: '/c', UV_CACHE_DIR: '/u', TZ: 'UTC', X: '1' });
  });

  test('the stdin queue is bounded: past 64 MiB messages are dropped', async () => {
    const h = startNodeChild('ignore-term', { stopTimeoutMs: 100 }); // never reads stdin
    await running(h);
    const payload = 'x'.repeat(1024 * 1024);
    let accepted = 0;
    while (h.child.send({ payload }) && accepted < 1000) accepted += 1;
    const perMessage = JSON.stringify({ payload }).length + 1;
    assert.ok(accepted * perMessage <= MAX_STDIN_QUEUE_BYTES + 1024 * 1024, `accepted ${accepted} MiB`);
    assert.ok(accepted >= 60, `accepted ${accepted} MiB`);
    assert.ok(h.lines.some((l) => l.msg === 'server stdin queue full; message dropped'));
  });
});

describe('StdioChild stdout line guard', () => {
  test('an 11 MB line is dropped and the next line still arrives', async () => {
    const h = startNodeChild('bigline');
    const next = await waitFor(() => h.messages.find((m) => (m as { method?: unknown }).method === 'after-big-line'), { timeoutMs: 20_000, message: 'line after the big one' });
    assert.deepEqual(next, { jsonrpc: '2.0', method: 'after-big-line' });
    assert.equal(h.messages.length, 1, 'the big line never becomes a message');
    const warn = h.lines.find((l) => l.msg === 'server stdout line too long; dropped');
    assert.equal(warn?.['limitBytes'], 10 * 1024 * 1024);
    assert.equal(h.child.status().state, 'running');
  });

  test('memory stays bounded while the big line streams through', async () => {
    // The same splitter StdioChild uses, fed the real bytes of the fixture.
    const maxBytes = 1024 * 1024;
    const lines: string[] = [];
    let overflows = 0;
    let peak = 0;
    const splitter = new LineSplitter({ maxBytes, mode: 'drop', onLine: (l) => lines.push(l.toString()), onOverflow: () => (overflows += 1) });
    const proc = spawn(process.execPath, [childScript('bigline'), String(11_000_000)], { stdio: ['pipe', 'pipe', 'inherit'] });
    proc.stdout.on('data', (chunk: Buffer) => {
      splitter.push(chunk);
      peak = Math.max(peak, splitter.bufferedBytes);
    });
    await waitFor(() => lines.length === 1, { timeoutMs: 20_000, message: 'line after the big one' });
    proc.stdin.end();
    await once(proc, 'close');
    assert.equal(overflows, 1);
    assert.ok(peak <= maxBytes, `held ${peak} bytes`);
    assert.deepEqual(JSON.parse(lines[0]!), { jsonrpc: '2.0', method: 'after-big-line' });
  });

  const splitCases: Array<{ name: string; chunks: string[]; mode: 'drop' | 'truncate'; max: number; want: string[]; end?: boolean }> = [
    { name: 'LF and CRLF in one chunk', chunks: ['a\r\nb\nc\r\n'], mode: 'drop', max: 10, want: ['a', 'b', 'c'] },
    { name: 'one line over many chunks', chunks: ['{"a"', ':', '1}\r', '\n'], mode: 'drop', max: 10, want: ['{"a":1}'] },
    { name: 'over the limit is dropped, the next line kept', chunks: ['0123456789AB', 'CD\nok\n'], mode: 'drop', max: 10, want: ['ok'] },
    { name: 'exactly the limit is kept', chunks: ['0123456789\n'], mode: 'drop', max: 10, want: ['0123456789'] },
    { name: 'truncate keeps the head', chunks: ['0123456', '789ABCDEF\nnext\n'], mode: 'truncate', max: 10, want: ['0123456789', 'next'] },
    { name: 'an unterminated last line counts at end', chunks: ['a\nb'], mode: 'drop', max: 10, want: ['a', 'b'], end: true },
    { name: 'an unterminated overlong line is dropped at end', chunks: ['a\n0123456789AB'], mode: 'drop', max: 10, want: ['a'], end: true },
  ];
  for (const c of splitCases) {
    test(`LineSplitter: ${c.name}`, () => {
      const got: string[] = [];
      const s = new LineSplitter({ maxBytes: c.max, mode: c.mode, onLine: (l) => got.push(l.toString()) });
      for (const chunk of c.chunks) {
        s.push(Buffer.from(chunk));
        assert.ok(s.bufferedBytes <= c.max);
      }
      if (c.end) s.end();
      assert.deepEqual(got, c.want);
    });
  }
});

/** Each delay lies in the upper half of its doubled ceiling (src/backoff.ts). */
function assertJittered(delays: readonly unknown[], ceilings: readonly number[]): void {
  assert.equal(delays.length, ceilings.length, JSON.stringify(delays));
  delays.forEach((d, i) => assert.ok(typeof d === 'number' && d >= (ceilings[i] ?? 0) / 2 && d <= (ceilings[i] ?? 0), `delay ${i}: ${String(d)} not in the upper half of ${ceilings[i]}`));
}

describe('StdioChild restarts', () => {
  test('a crashing child restarts with doubling, jittered backoff and reaches crash-looping', async () => {
    const h = startNodeChild('crash', { backoff: { initialMs: 20, maxMs: 80 } });
    await waitFor(() => h.child.status().state === 'crash-looping' && h.exits.length >= 5, { timeoutMs: 10_000, message: 'crash-looping' });
    const status = h.child.status();
    assert.ok(status.restarts >= 3);
    assert.equal(status.lastError, 'exit code 2: fatal: boom');
    assert.ok(h.exits.every((e) => e.willRestart && e.code === 2 && e.signal === null));
    const delays = h.lines.filter((l) => l.restartInMs !== undefined).map((l) => l['restartInMs']);
    assertJittered(delays.slice(0, 5), [20, 40, 80, 80, 80]);
    const states = h.lines.filter((l) => l.restartInMs !== undefined).map((l) => l.msg);
    assert.deepEqual(states.slice(0, 4), ['server exited', 'server exited', 'server exited', 'server crash-looping']);
    // Timers never fire early: each respawn came at least its delay after the exit.
    for (let i = 0; i < 4; i += 1) {
      const gap = h.spawns[i + 1]! - h.exitTimes[i]!;
      assert.ok(gap >= (delays[i] as number) - 2, `restart ${i + 1} after ${gap} ms`);
    }
    await h.child.stop();
    assert.equal(h.child.status().state, 'stopped');
  });

  test('the backoff resets once the child stayed up resetAfterMs', async () => {
    const h = startNodeChild('echo', { backoff: { initialMs: 10, maxMs: 1000, resetAfterMs: 0 } });
    for (let i = 1; i <= 3; i += 1) {
      await waitFor(() => h.spawns.length === i && h.child.status().state === 'running', { message: `spawn ${i}` });
      assert.equal(h.child.send({ jsonrpc: '2.0', id: i, method: 'exit', params: { code: 5 } }), true);
      await waitFor(() => h.exits.length === i, { message: `exit ${i}` });
    }
    const delays = h.lines.filter((l) => l.restartInMs !== undefined).map((l) => l['restartInMs']);
    assertJittered(delays, [10, 10, 10]);
    assert.match(h.child.status().lastError ?? '', /^exit code 5/);
  });

  test('a missing command is an exit with a clear lastError, retried', async () => {
    const h = startChild({ command: 'berth-no-such-command-7f3a', backoff: { initialMs: 10, maxMs: 20 } });
    await waitFor(() => h.exits.length >= 2, { message: 'two failed spawns' });
    const status = h.child.status();
    assert.equal(status.lastError, 'command not found: berth-no-such-command-7f3a');
    assert.equal(status.pid, undefined);
    assert.deepEqual(h.exits[0], { code: null, signal: null, willRestart: true });
    assert.equal(h.spawns.length, 0);
  });

  test('a missing working directory is named as such', async () => {
    const h = startChild({ command: process.execPath, args: [childScript('echo')], cwd: '/nonexistent/berth-cwd', backoff: { initialMs: 60_000, maxMs: 60_000 } });
    await waitFor(() => h.exits.length === 1, { message: 'failed spawn' });
    assert.equal(h.child.status().lastError, 'working directory not found: /nonexistent/berth-cwd');
  });
});

describe('StdioChild stop and process groups', () => {
  test('stop() escalates to SIGKILL for a child that ignores stdin close and SIGTERM', async () => {
    const h = startNodeChild('ignore-term', { stopTimeoutMs: 150 });
    const [, pid] = await stderrMatch(h, /^stubborn child (\d+) ready$/);
    await h.child.stop();
    assert.equal(h.child.status().state, 'stopped');
    assert.deepEqual(h.exits, [{ code: null, signal: 'SIGKILL', willRestart: false }]);
    assert.ok(h.child.status().stderrTail.includes('ignoring SIGTERM'), 'SIGTERM reached it first');
    const steps = h.lines.filter((l) => l.msg === 'server stop step').map((l) => l['step']);
    assert.deepEqual(steps, ['stdin closed', 'SIGTERM', 'SIGKILL']);
    await assertGone(Number(pid), 'child');
    await h.child.stop(); // idempotent
  });

  test('stop() closes stdin first and a well-behaved child exits cleanly', async () => {
    const h = startNodeChild('echo', { stopTimeoutMs: 5_000 });
    await running(h);
    const pid = h.child.status().pid!;
    await Promise.all([h.child.stop(), h.child.stop()]);
    assert.deepEqual(h.exits, [{ code: 0, signal: null, willRestart: false }]);
    await assertGone(pid, 'child');
  });

  test('stop() takes the whole process group, grandchildren included', async () => {
    const h = startNodeChild('grandchild', { stopTimeoutMs: 300 });
    const [, parent, grandchild] = await stderrMatch(h, /^parent (\d+) grandchild (\d+)$/);
    assert.ok(isRunning(Number(parent)) && isRunning(Number(grandchild)));
    await h.child.stop();
    await assertGone(Number(parent), 'child');
    await assertGone(Number(grandchild), 'grandchild');
    const steps = h.lines.filter((l) => l.msg === 'server stop step').map((l) => l['step']);
    assert.deepEqual(steps, ['stdin closed', 'SIGTERM'], 'gone after SIGTERM, no SIGKILL needed');
    assert.equal(h.exits.length, 1);
  });

  test('when the child dies on its own, its orphaned grandchildren are killed', async () => {
    const h = startNodeChild('grandchild', { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const [, parent, grandchild] = await stderrMatch(h, /^parent (\d+) grandchild (\d+)$/);
    await running(h);
    assert.equal(h.child.send({ bye: true }), true);
    await waitFor(() => !isRunning(Number(grandchild)), { message: 'grandchild killed' });
    await assertGone(Number(parent), 'child');
    await assertGone(Number(grandchild), 'grandchild');
    assert.deepEqual(h.exits, [{ code: 1, signal: null, willRestart: true }]);
    assert.equal(h.child.status().state, 'backoff');
  });

  test('killAllChildren() SIGKILLs every live group synchronously', async () => {
    const h = startNodeChild('grandchild', { backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const [, parent, grandchild] = await stderrMatch(h, /^parent (\d+) grandchild (\d+)$/);
    killAllChildren();
    await waitFor(() => !isRunning(Number(parent)) && !isRunning(Number(grandchild)), { message: 'group killed' });
    await assertGone(Number(parent), 'child');
    await assertGone(Number(grandchild), 'grandchild');
    await waitFor(() => h.exits.length === 1, { message: 'exit event' });
    assert.deepEqual(h.exits[0], { code: null, signal: 'SIGKILL', willRestart: true });
  });
});

describe('commandFor', () => {
  const cases: Array<{ name: string; spec: UnitSpec; want: ReturnType<typeof commandFor> }> = [
    { name: 'npx', spec: { runtime: 'npx', package: '@scope/pkg@1.2.3', args: ['--flag'], env: settings }, want: { command: 'npx', args: ['-y', '@scope/pkg@1.2.3', '--flag'] } },
    { name: 'uvx', spec: { runtime: 'uvx', package: 'mcp-server-time', args: ['--tz', 'UTC'], env: settings }, want: { command: 'uvx', args: ['mcp-server-time', '--tz', 'UTC'] } },
    { name: 'command', spec: { runtime: 'command', command: './server', args: ['a'], env: settings }, want: { command: './server', args: ['a'] } },
    { name: 'command with cwd', spec: { runtime: 'command', command: 'srv', args: [], cwd: '/srv', env: settings }, want: { command: 'srv', args: [], cwd: '/srv' } },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(commandFor(c.spec), c.want));

  test('container is refused with a clear error', () => {
    const spec: UnitSpec = { runtime: 'container', image: 'ghcr.io/x/y:1', port: 80, path: '/mcp', transport: 'streamable-http', args: [], env: settings };
    assert.throws(() => commandFor(spec), /local backend cannot run runtime container \(image ghcr\.io\/x\/y:1\)/);
  });
});

describe('uvx runtime (shim in test/fixtures/bin)', () => {
  const shimPath = `${join(fixtures, 'bin')}${delimiter}${process.env['PATH'] ?? ''}`;

  test('initialize and tools/call round-trip through the python echo server', async () => {
    const { command, args } = commandFor({ runtime: 'uvx', package: 'berth-echo-server', args: ['--greeting', 'hi'], env: settings });
    const h = startChild({ id: 'py-echo', command, args, env: { PATH: shimPath } });
    await running(h);
    const init = await request(h, {
      id: 1,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'berth-test', version: '0' } },
    });
    const result = init['result'] as { protocolVersion: string; capabilities: Record<string, unknown>; serverInfo: { name: string; args: string[] } };
    assert.equal(result.protocolVersion, LATEST_PROTOCOL_VERSION);
    assert.ok(result.capabilities['tools']);
    assert.deepEqual(result.serverInfo.args, ['--greeting', 'hi']);
    assert.equal(h.child.send({ jsonrpc: '2.0', method: 'notifications/initialized' }), true);
    const call = await request(h, { id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'round trip' } } });
    assert.deepEqual(call['result'], { content: [{ type: 'text', text: 'round trip' }] });
    const unknown = await request(h, { id: 3, method: 'resources/list' });
    assert.equal((unknown['error'] as { code: number }).code, -32601);
  });

  test('an unknown package fails like uvx does', async () => {
    const { command, args } = commandFor({ runtime: 'uvx', package: 'berth-no-such-package', args: [], env: settings });
    const h = startChild({ command, args, env: { PATH: shimPath }, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    await waitFor(() => h.exits.length === 1, { message: 'uvx failure' });
    assert.match(h.child.status().lastError ?? '', /^exit code 1: .*berth-no-such-package was not found in the package registry/);
  });

  test('the SDK client talks to the python echo server', async () => {
    const transport = new StdioClientTransport({ command: join(fixtures, 'bin', 'uvx'), args: ['berth-echo-server'], stderr: 'ignore' });
    const client = new Client({ name: 'berth-test', version: '0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(
        tools.map((t) => t.name),
        ['echo'],
      );
      const result = await client.callTool({ name: 'echo', arguments: { text: 'via sdk' } });
      assert.deepEqual(result.content, [{ type: 'text', text: 'via sdk' }]);
      await client.ping();
    } finally {
      await client.close();
    }
  });
});
