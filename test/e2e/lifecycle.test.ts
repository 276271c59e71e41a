// Converging and reloading: sessions survive reloads that do not touch their
// server, bad configs keep the last good one serving, broken servers stay
// contained, idle per-user instances stop, and SIGTERM leaves no process.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startBerth } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/observe/log.ts';
import type { TestBerth } from '../helpers/berth.ts';
import { configText, connectClient, everythingYaml, repoRoot, startTestBerth, status } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

const runCli = promisify(execFile);

function echoText(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0]?.text ?? '';
}

const crasher = `  crasher:
    type: multi-user
    runtime: command
    command: ${JSON.stringify(process.execPath)}
    args: ["-e", "process.exit(3)"]
`;

describe('hot reload', () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(everythingYaml());
  });
  after(() => b.stop());

  test('a session survives reloads that change other servers, and keeps calling tools', async () => {
    const client = await connectClient(b.url, 'everything');
    const pid = (await status(b.url)).servers.find((s) => s.name === 'everything')?.instances[0]?.detail;
    assert.ok(pid !== undefined);
    const variants = [everythingYaml() + everythingYaml('other'), everythingYaml() + everythingYaml('other', '    env: { FLAVOUR: b }\n'), everythingYaml()];
    for (const [i, servers] of variants.entries()) {
      const generation = (await status(b.url)).generation;
      b.writeConfig(servers);
      await waitFor(async () => (await status(b.url)).generation > generation && (await status(b.url)).lastReload?.ok, { timeoutMs: 20_000, message: `reload ${i}` });
      assert.equal(echoText(await client.callTool({ name: 'echo', arguments: { message: `after reload ${i}` } })), `Echo: after reload ${i}`);
    }
    const after = await status(b.url);
    assert.equal(after.servers.find((s) => s.name === 'everything')?.instances[0]?.detail, pid, 'the unchanged server was never restarted');
    assert.equal(after.servers.some((s) => s.name === 'other'), false, 'the removed server is gone');
    await client.close();
  });

  test('an invalid config is rejected and the last good one keeps serving', async () => {
    const client = await connectClient(b.url, 'everything');
    const before = await status(b.url);
    b.writeConfig(`${everythingYaml()}  broken:\n    type: multi-user\n    runtme: npx\n`);
    await waitFor(async () => (await status(b.url)).lastReload?.ok === false, { timeoutMs: 20_000, message: 'the rejection' });
    const rejected = await status(b.url);
    assert.equal(rejected.generation, before.generation);
    assert.ok(rejected.lastReload?.errors.some((e) => /berth\.yaml:\d+:\d+ servers\.broken\.runtme: unknown key `runtme` \(did you mean `runtime`\?\)/.test(e)), JSON.stringify(rejected.lastReload));
    assert.equal(echoText(await client.callTool({ name: 'echo', arguments: { message: 'still here' } })), 'Echo: still here');
    b.writeConfig(everythingYaml());
    await waitFor(async () => (await status(b.url)).lastReload?.ok === true, { timeoutMs: 20_000, message: 'recovery' });
    await client.close();
  });

  test('replacing a server moves its sessions over and tells clients to list tools again', async () => {
    const client = await connectClient(b.url, 'everything');
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
    const pid = (await status(b.url)).servers.find((s) => s.name === 'everything')?.instances[0]?.detail;
    b.writeConfig(everythingYaml('everything', '    env: { VERSION_MARK: "2" }\n'));
    await waitFor(async () => (await status(b.url)).servers.find((s) => s.name === 'everything')?.instances[0]?.detail !== pid, { timeoutMs: 30_000, message: 'the replacement' });
    await waitFor(() => changed > 0, { timeoutMs: 10_000, message: 'tools/list_changed' });
    assert.equal(echoText(await client.callTool({ name: 'echo', arguments: { message: 'same session' } })), 'Echo: same session');
    await client.close();
  });
});

describe('composites across reloads', () => {
  test('a curation change keeps the session and tells the client to list tools again', async () => {
    const box = (tools: string): string => `  box:\n    type: composite\n    components:\n      - server: everything\n        tools: { include: [${tools}] }\n`;
    const b = await startTestBerth(everythingYaml() + box('echo'));
    try {
      const client = await connectClient(b.url, 'box');
      let changed = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['echo']);
      // server-everything announces list changes of its own while the first listing connects the
      // component; only a notification after the reload tells of the new curation.
      const before = changed;
      b.writeConfig(everythingYaml() + box('echo, get-sum'));
      await waitFor(() => changed > before, { timeoutMs: 20_000, message: 'tools/list_changed' });
      // A stray upstream notification may come first; the new curation follows within the deadline.
      await waitFor(async () => (await client.listTools()).tools.length === 2, { timeoutMs: 20_000, message: 'the new curation' });
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['echo', 'get-sum']);
      assert.equal(echoText(await client.callTool({ name: 'echo', arguments: { message: 'same box' } })), 'Echo: same box');
      await client.close();
    } finally {
      await b.stop();
    }
  });
});

/** Writes `<root>/<name>/berth.yaml`: one version of a mounted or synced config. */
function writeVersion(root: string, name: string, servers: string): void {
  mkdirSync(path.join(root, name));
  writeFileSync(path.join(root, name, 'berth.yaml'), configText(servers));
}

/** What the kubelet and git-sync do: point a new symlink at the new version and rename it over the old. */
function swapLink(root: string, link: string, target: string): void {
  symlinkSync(target, path.join(root, `${link}.tmp`));
  renameSync(path.join(root, `${link}.tmp`), path.join(root, link));
}

describe('config mounts', () => {
  test('a Kubernetes ConfigMap-style ..data symlink swap reloads', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-configmap-'));
    const version = (name: string, servers: string): void => writeVersion(dir, name, servers);
    version('..v1', everythingYaml());
    symlinkSync('..v1', path.join(dir, '..data'));
    symlinkSync('..data/berth.yaml', path.join(dir, 'berth.yaml'));
    const berth = await startBerth(path.join(dir, 'berth.yaml'), { port: 0 }, silentLogger());
    try {
      assert.deepEqual((await status(berth.url)).servers.map((s) => s.name), ['everything']);
      version('..v2', everythingYaml() + everythingYaml('second'));
      swapLink(dir, '..data', '..v2');
      await waitFor(async () => (await status(berth.url)).servers.some((s) => s.name === 'second'), { timeoutMs: 20_000, message: 'reload after the swap' });
    } finally {
      await berth.stop();
    }
  });

  test('a git-sync-style swap of a symlinked directory reloads, and the next edit too', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'berth-gitsync-'));
    const worktree = (name: string, servers: string): void => writeVersion(root, name, servers);
    worktree('rev1', everythingYaml());
    symlinkSync('rev1', path.join(root, 'repo'));
    const berth = await startBerth(path.join(root, 'repo', 'berth.yaml'), { port: 0 }, silentLogger());
    try {
      worktree('rev2', everythingYaml() + everythingYaml('second'));
      swapLink(root, 'repo', 'rev2');
      await waitFor(async () => (await status(berth.url)).servers.some((s) => s.name === 'second'), { timeoutMs: 20_000, message: 'reload after the swap' });
      // The watch now follows rev2: an edit there is seen as well.
      writeFileSync(path.join(root, 'rev2', 'berth.yaml'), configText(everythingYaml() + everythingYaml('third')));
      await waitFor(async () => (await status(berth.url)).servers.some((s) => s.name === 'third'), { timeoutMs: 20_000, message: 'reload after an edit in the new worktree' });
    } finally {
      await berth.stop();
    }
  });
});

describe('failures stay contained', () => {
  let b: TestBerth;
  before(async () => {
    b = await startTestBerth(everythingYaml() + crasher + `  sleeper:\n    type: multi-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: ["-e", "setInterval(() => {}, 1000)"]\n    startupTimeout: 2s\n`);
  });
  after(() => b.stop());

  test('a crashing server is reported as crash-looping while the others serve', async () => {
    const s = await waitFor(async () => {
      const report = await status(b.url);
      const crash = report.servers.find((x) => x.name === 'crasher');
      return crash?.instances[0] !== undefined && crash.instances[0].restarts >= 3 ? crash : undefined;
    }, { timeoutMs: 30_000, message: 'crash loop visible in status' });
    assert.match(s.lastError ?? s.instances[0]?.lastError ?? '', /exit code 3/);
    const client = await connectClient(b.url, 'everything');
    assert.equal(echoText(await client.callTool({ name: 'echo', arguments: { message: 'unaffected' } })), 'Echo: unaffected');
    await client.close();
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    assert.match(metrics, /berth_instance_restarts\{server="crasher"\} [3-9]/);
  });

  test('a server that never answers initialize is reported, not waited on forever', async () => {
    const report = await waitFor(async () => {
      const r = await status(b.url);
      return r.servers.find((x) => x.name === 'sleeper')?.lastError !== undefined ? r : undefined;
    }, { timeoutMs: 30_000, message: 'startup timeout reported' });
    assert.match(report.servers.find((x) => x.name === 'sleeper')?.lastError ?? '', /did not become ready/);
    // Ready once both have had their verdict (crash loop, startup timeout): one broken server must not take the others out of rotation.
    const res = await waitFor(async () => {
      const r = await fetch(`${b.url}/readyz`);
      return r.status === 200 ? r : undefined;
    }, { timeoutMs: 30_000, message: 'ready after the verdicts' });
    assert.deepEqual(((await res.json()) as { notReady: string[] }).notReady, ['crasher', 'sleeper']);
  });
});

describe('per-user instances', () => {
  test('start on first use and stop after idleTimeout', async () => {
    const b = await startTestBerth(`  mine:\n    type: single-user\n    runtime: command\n    command: ${JSON.stringify(process.execPath)}\n    args: [${JSON.stringify(path.join(repoRoot, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'))}, stdio]\n    idleTimeout: 1s\n`);
    try {
      assert.equal((await status(b.url)).servers[0]?.instances.length, 0, 'nothing runs before first use');
      const client = await connectClient(b.url, 'mine');
      await client.callTool({ name: 'echo', arguments: { message: 'mine' } });
      const running = (await status(b.url)).servers[0]?.instances[0];
      assert.equal(running?.user, 'anonymous');
      assert.equal(running?.state, 'ready');
      await waitFor(async () => (await status(b.url)).servers[0]?.instances.length === 0, { timeoutMs: 20_000, message: 'idle instance stopped' });
      await client.close().catch(() => undefined);
    } finally {
      await b.stop();
    }
  });
});

describe('a berth process', () => {
  test('status and plan --running read it; SIGHUP reloads; SIGTERM drains, stops every child and leaves no orphan process', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'berth-sigterm-'));
    const file = path.join(dir, 'berth.yaml');
    writeFileSync(file, configText(everythingYaml() + everythingYaml('second')));
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/berth.js'), 'serve', file, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    // A failed assertion must not leave berth running (the runner would wait for it).
    t.after(() => void (child.exitCode === null && child.kill('SIGKILL')));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = await waitFor(() => /serving .* at (http:\/\/\S+)\/mcp/.exec(stderr)?.[1], { timeoutMs: 30_000, message: 'berth serving' });
    const client = await connectClient(url, 'everything');
    await client.callTool({ name: 'echo', arguments: { message: 'before shutdown' } });
    const pids = await waitFor(async () => {
      const r = await status(url);
      const all = r.servers.flatMap((s) => s.instances.map((i) => Number(/^pid (\d+)$/.exec(i.detail ?? '')?.[1]))).filter((p) => !Number.isNaN(p));
      return all.length === 2 ? all : undefined;
    }, { timeoutMs: 30_000, message: 'two instances' });
    const cli = (...args: string[]) => runCli(process.execPath, [path.join(repoRoot, 'bin/berth.js'), ...args]).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
    );
    const table = await cli('status', file, '--url', url);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^everything\s+hosted\/shared\s+pid \d+\s+ready\s+0\s+1/m);
    const same = await cli('plan', file, '--running', url);
    assert.equal(same.code, 0, same.stdout);
    assert.match(same.stdout, /no changes/);
    // A start-up setting the running berth would need a restart for: its listen port.
    writeFileSync(path.join(dir, 'port.yaml'), configText(everythingYaml() + everythingYaml('second'), 'listen: { host: 127.0.0.1, port: 18089 }\n'));
    const port = await cli('plan', path.join(dir, 'port.yaml'), '--running', url);
    assert.equal(port.code, 2, port.stdout);
    assert.match(port.stdout, /listen\.port/);
    writeFileSync(path.join(dir, 'next.yaml'), configText(everythingYaml()));
    const fewer = await cli('plan', path.join(dir, 'next.yaml'), '--running', url);
    assert.equal(fewer.code, 2);
    assert.match(fewer.stdout, /- delete\s+second/);
    child.kill('SIGHUP');
    await waitFor(async () => (await status(url)).lastReload?.reason === 'SIGHUP', { timeoutMs: 20_000, message: 'a reload on SIGHUP' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor(() => pids.every((p) => !alive(p)), { timeoutMs: 10_000, message: `children ${pids.join(', ')} gone` });
    await client.close().catch(() => undefined);
  });
});
