// The CLI as users run it: a real `node bin/berth.js` process, real files in
// a temporary directory, exit codes and output checked.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { CliResult } from '../helpers/cli.ts';
import { runBerth } from '../helpers/cli.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/invalid/', import.meta.url));

type Result = CliResult;

let dir = '';

/** Runs berth in `dir` (or `cwd`) with a clean environment plus `env`. */
function berth(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<Result> {
  return runBerth(args, { cwd: options.cwd ?? dir, ...(options.env === undefined ? {} : { env: options.env }) });
}

/** Output a user may see: never a stack trace or Node internals. */
function assertNoStack(result: Result): void {
  const all = `${result.stdout}\n${result.stderr}`;
  assert.doesNotMatch(all, /^\s+at /m, `stack trace in output:\n${all}`);
  assert.doesNotMatch(all, /node:internal|\.ts:\d+:\d+\)/, `internals in output:\n${all}`);
}

const GOOD = `version: 1
servers:
  files:
    type: multi-user
    runtime: npx
    package: "@acme/files@1.0.0"
    env:
      API_TOKEN: tok-SECRET-1
  docs:
    type: remote
    url: https://docs.example.com/mcp
`;

const CHANGED = `version: 1
servers:
  files:
    type: multi-user
    runtime: npx
    package: "@acme/files@2.0.0"
    env:
      API_TOKEN: tok-SECRET-2
  notes:
    type: single-user
    runtime: command
    command: /usr/bin/notes
`;

// Two problems, on lines 5 and 7: both must be reported.
const BAD = `version: 1
servers:
  files:
    type: multi-user
    runtime: npz
    package: x
    bogus: 1
`;

const GARBAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-cli-'));
  writeFileSync(path.join(dir, 'good.yaml'), GOOD);
  writeFileSync(path.join(dir, 'changed.yaml'), CHANGED);
  writeFileSync(path.join(dir, 'bad.yaml'), BAD);
  writeFileSync(path.join(dir, 'garbage.yaml'), GARBAGE);
  writeFileSync(path.join(dir, 'empty.yaml'), '');
  mkdirSync(path.join(dir, 'a-directory.yaml'));
  mkdirSync(path.join(dir, 'project'));
  writeFileSync(path.join(dir, 'project', 'berth.yaml'), GOOD);
  mkdirSync(path.join(dir, 'nothing-here'));
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('berth --help', { concurrency: true }, () => {
  it('berth --help lists the commands and exits 0', async () => {
    const r = await berth(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Usage: berth/);
    assert.match(r.stdout, /validate/);
    assert.match(r.stdout, /plan/);
  });

  it('<command> --help exits 0 for every command the help lists', async () => {
    const commands = subcommands((await berth(['--help'])).stdout);
    assert.ok(commands.includes('validate') && commands.includes('plan'), `commands found: ${commands.join(', ')}`);
    const results = await Promise.all(commands.map(async (command) => [command, await berth([command, '--help'])] as const));
    for (const [command, r] of results) {
      assert.equal(r.code, 0, `${command} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Usage: berth ${command}`), `${command} --help`);
      assertNoStack(r);
    }
  });

  it('--version prints the version', async () => {
    const r = await berth(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('an unknown command fails with a hint, exit 1', async () => {
    const r = await berth(['vaildate']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown command 'vaildate'/);
    assertNoStack(r);
  });
});

describe('berth validate', { concurrency: true }, () => {
  it('a valid file prints ok, exit 0', async () => {
    const r = await berth(['validate', 'good.yaml']);
    assert.deepEqual(r, { code: 0, stdout: 'ok\n', stderr: '' });
  });

  it('an invalid file prints every problem as file:line:col, exit 1, no stack trace', async () => {
    const r = await berth(['validate', 'bad.yaml']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /bad\.yaml:5:14 servers\.files\.runtime: must be one of: npx, uvx, command, container/);
    assert.match(r.stderr, /bad\.yaml:7:5 servers\.files\.bogus: unknown key `bogus`/);
    assert.match(r.stderr, /2 errors/);
    assertNoStack(r);
  });

  it('--json lists the issues, exit 1', async () => {
    const r = await berth(['validate', '--json', 'bad.yaml']);
    assert.equal(r.code, 1);
    const report = JSON.parse(r.stdout) as { ok: boolean; file: string; issues: { code: string; file: string; line: number; col: number; path: string; message: string }[] };
    assert.equal(report.ok, false);
    assert.equal(report.file, 'bad.yaml');
    assert.deepEqual(
      report.issues.map((i) => [i.file, i.line, i.col, i.path, i.code]),
      [
        ['bad.yaml', 5, 14, 'servers.files.runtime', 'not_allowed'],
        ['bad.yaml', 7, 5, 'servers.files.bogus', 'unknown_key'],
      ],
    );
  });

  it('validate and serve refuse the same auth problems, all at once, each at file:line:col', async () => {
    const fixture = path.join(FIXTURES, 'auth-beyond-loopback.yaml');
    const expected = readFileSync(path.join(FIXTURES, 'auth-beyond-loopback.expected'), 'utf8').trim().split('\n');
    for (const args of [['validate', fixture], ['serve', fixture]]) {
      const r = await berth(args);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      for (const line of expected) assert.ok(r.stderr.includes(line.replace(/^auth-beyond-loopback\.yaml/, fixture)), `${args[0]} names ${line}:\n${r.stderr}`);
      assertNoStack(r);
    }
  });

  it('--json on a valid file says ok with no issues, exit 0', async () => {
    const r = await berth(['validate', 'good.yaml', '--json']);
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, file: 'good.yaml', servers: 2, issues: [] });
  });
});

describe('berth plan', { concurrency: true }, () => {
  it('the same config twice: no changes, exit 0', async () => {
    const r = await berth(['plan', 'good.yaml', '--from', 'good.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no changes/);
    assert.match(r.stdout, /0 to create, 0 to replace, 0 to scale, 0 to delete, 1 unchanged; 0 route changes/);
  });

  it('changes: exit 2, terraform-style lines, secrets hidden', async () => {
    const r = await berth(['plan', 'changed.yaml', '--from', 'good.yaml']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /~ replace +files +\(env\.API_TOKEN: \(secret\) → \(secret\), package: @acme\/files@1\.0\.0 → @acme\/files@2\.0\.0\)/);
    assert.match(r.stdout, /\+ create +notes/);
    assert.match(r.stdout, /- route +docs/);
    assert.doesNotMatch(r.stdout, /tok-SECRET/);
  });

  it('from nothing: everything is created, exit 2', async () => {
    const r = await berth(['plan', 'good.yaml']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /\(from nothing\)/);
    assert.match(r.stdout, /\+ create +files/);
  });

  it('--json: the plan as data, without secret values', async () => {
    const r = await berth(['plan', 'changed.yaml', '--from', 'good.yaml', '--json']);
    assert.equal(r.code, 2, r.stderr);
    const plan = JSON.parse(r.stdout) as { changes: boolean; actions: { kind: string; unit: { name: string } }[]; routes: { kind: string; route: { server: string } }[] };
    assert.equal(plan.changes, true);
    assert.deepEqual(
      plan.actions.map((a) => `${a.kind} ${a.unit.name}`),
      ['replace files', 'create notes'],
    );
    assert.deepEqual(
      plan.routes.map((c) => `${c.kind} ${c.route.server}`),
      ['remove docs', 'add notes'],
    );
    assert.doesNotMatch(r.stdout, /tok-SECRET/);
  });

  it('URL credentials are REDACTED in the text and --json plan', async () => {
    writeFileSync(path.join(dir, 'remote-token.yaml'), 'version: 1\nservers:\n  docs:\n    type: remote\n    url: https://bot:pw-SECRET-1@docs.example.com/mcp?apikey=key-SECRET-2&team=core\n');
    for (const args of [['plan', 'remote-token.yaml', '--json'], ['plan', 'remote-token.yaml']]) {
      const r = await berth(args);
      assert.equal(r.code, 2, r.stderr);
      assert.doesNotMatch(r.stdout, /SECRET/);
    }
    const json = await berth(['plan', 'remote-token.yaml', '--json']);
    assert.match(json.stdout, /"url": "https:\/\/REDACTED:REDACTED@docs\.example\.com\/mcp\?apikey=REDACTED&team=core"/);
  });

  it('--json with no changes: changes false, exit 0', async () => {
    const r = await berth(['plan', '--json', 'good.yaml', '--from', 'good.yaml']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { changes: boolean }).changes, false);
  });

  it('auth changes: exit 2, the providers a reload changes, never their keys', async () => {
    const key = (user: string, hash: string): string => `      - { user: ${user}, sha256: "${hash.repeat(64)}" }\n`;
    const auth = (keys: string, extra = ''): string => `version: 1\nauth:\n  - type: apiKey\n    keys:\n${keys}  - { type: jwt, issuer: "https://idp.example.com" }\n${extra}servers: {}\n`;
    writeFileSync(path.join(dir, 'auth-old.yaml'), auth(key('alice', 'a')));
    writeFileSync(path.join(dir, 'auth-new.yaml'), auth(key('alice', 'a') + key('bob', 'b'), '  - { type: header, trustedProxies: [10.0.0.0/8] }\n'));
    const r = await berth(['plan', 'auth-new.yaml', '--from', 'auth-old.yaml']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /~ auth +auth\[0\] \(apiKey\) +\(applies on reload\)/);
    assert.match(r.stdout, /~ auth +auth\[2\] \(header\) added/);
    assert.doesNotMatch(r.stdout, /auth\[1\]/, 'the jwt provider did not change');
    assert.match(r.stdout, /2 auth provider changes/);
    assert.doesNotMatch(r.stdout, /bbbb|bob/);
    const back = await berth(['plan', 'auth-old.yaml', '--from', 'auth-new.yaml', '--json']);
    assert.equal(back.code, 2, back.stderr);
    assert.deepEqual((JSON.parse(back.stdout) as { auth: string[] }).auth, ['auth[0] (apiKey)', 'auth[2] removed']);
  });

  it('an invalid config: every problem with its position, exit 1', async () => {
    const r = await berth(['plan', 'good.yaml', '--from', 'bad.yaml']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.yaml:5:14 /);
    assertNoStack(r);
  });
});

describe('which config file', { concurrency: true }, () => {
  it('$BERTH_CONFIG when no file is given, before ./berth.yaml', async () => {
    const ok = await berth(['validate'], { env: { BERTH_CONFIG: '../good.yaml' }, cwd: path.join(dir, 'nothing-here') });
    assert.deepEqual(ok, { code: 0, stdout: 'ok\n', stderr: '' });
    // project/ has a valid berth.yaml; the failure shows $BERTH_CONFIG was read instead.
    const bad = await berth(['validate'], { env: { BERTH_CONFIG: '../bad.yaml' }, cwd: path.join(dir, 'project') });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error \.\.\/bad\.yaml:5:14 /m);
  });

  it('./berth.yaml when neither a file nor $BERTH_CONFIG is given', async () => {
    const ok = await berth(['validate'], { cwd: path.join(dir, 'project') });
    assert.deepEqual(ok, { code: 0, stdout: 'ok\n', stderr: '' });
    const plan = await berth(['plan', '--from', 'berth.yaml'], { cwd: path.join(dir, 'project') });
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /berth plan: berth\.yaml \(from berth\.yaml\)/);
  });

  it('without any: says which file it looked for and how to give one', async () => {
    const r = await berth(['validate'], { cwd: path.join(dir, 'nothing-here') });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /berth\.yaml:1:1 cannot read the config file \(ENOENT\)/);
    assert.match(r.stderr, /BERTH_CONFIG/);
    assertNoStack(r);
  });

  it('an argument wins over $BERTH_CONFIG', async () => {
    const r = await berth(['validate', 'good.yaml'], { env: { BERTH_CONFIG: 'bad.yaml' } });
    assert.deepEqual(r, { code: 0, stdout: 'ok\n', stderr: '' });
  });
});

describe('unusable files get a clear error, never a stack trace', { concurrency: true }, () => {
  const cases: readonly { name: string; file: string; error: RegExp }[] = [
    { name: 'a file that does not exist', file: 'missing.yaml', error: /missing\.yaml:1:1 cannot read the config file \(ENOENT\)/ },
    { name: 'a directory', file: 'a-directory.yaml', error: /a-directory\.yaml:1:1 cannot read the config file \(EISDIR\)/ },
    { name: 'binary garbage', file: 'garbage.yaml', error: /garbage\.yaml:\d+:\d+ / },
    { name: 'an empty file', file: 'empty.yaml', error: /empty\.yaml:1:1 the config must be a mapping/ },
  ];
  for (const c of cases) {
    for (const args of [['validate', c.file], ['plan', c.file], ['plan', 'good.yaml', '--from', c.file]]) {
      it(`${c.name}: berth ${args.join(' ')}`, async () => {
        const r = await berth(args);
        assert.equal(r.code, 1, `exit code; stdout: ${r.stdout}`);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, c.error);
        assertNoStack(r);
      });
    }
  }
});

/** Command names from commander's help: the lines under "Commands:", without `help`. */
function subcommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1] ?? '').filter((name) => name !== 'help');
}
