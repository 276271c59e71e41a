// The shipped config.example.yaml, served as `npm start` serves it: every
// kind of server it declares answers a real client.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { Berth } from '../../src/cli/serve.ts';
import { startBerth } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { connectClient, freePort, repoRoot } from '../helpers/berth.ts';

function text(result: unknown): string {
  return (result as { content: { text: string }[] }).content.map((c) => c.text).join('');
}

describe('config.example.yaml', () => {
  let berth: Berth;
  before(async () => {
    // The example reads its port from BERTH_PORT, and its remote points back at berth itself.
    process.env['BERTH_PORT'] = String(await freePort());
    berth = await startBerth(path.join(repoRoot, 'config.example.yaml'), {}, silentLogger());
  });
  after(async () => {
    await berth.stop();
    delete process.env['BERTH_PORT'];
  });

  test('the multi-user npx server answers', async () => {
    const client = await connectClient(berth.url, 'everything');
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'npm start' } })), 'Echo: npm start');
    await client.close();
  });

  test('the single-user command server answers', async () => {
    const client = await connectClient(berth.url, 'scratch');
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'mine' } })), 'Echo: mine');
    await client.close();
  });

  test('the remote server is proxied', async () => {
    const client = await connectClient(berth.url, 'mirror');
    assert.ok((await client.listTools()).tools.some((t) => t.name === 'get-sum'));
    await client.close();
  });

  test('the composite serves exactly its curated tools', async () => {
    const client = await connectClient(berth.url, 'toolbox');
    const tools = (await client.listTools()).tools;
    assert.deepEqual(tools.map((t) => t.name).sort(), ['add', 'echo', 'scratch_echo']);
    assert.equal(tools.find((t) => t.name === 'scratch_echo')?.description, 'Echo a message back, from a private instance');
    assert.match(text(await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })), /42/);
    assert.equal(text(await client.callTool({ name: 'scratch_echo', arguments: { message: 'curated' } })), 'Echo: curated');
    await client.close();
  });

  test("the README's Inspector command works as written (the local Inspector for npx, this berth's port for 8080)", async () => {
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const command = /npx @modelcontextprotocol\/inspector --cli ([^`\n]+)/.exec(readme)?.[1];
    assert.ok(command !== undefined, 'the README has an Inspector CLI command');
    const args = command.split(' ').map((a) => a.replace('http://127.0.0.1:8080', berth.url));
    const cli = path.join(repoRoot, 'node_modules/@modelcontextprotocol/inspector/cli/build/index.js');
    const { stdout } = await promisify(execFile)(process.execPath, [cli, ...args], { timeout: 60_000 });
    assert.ok((JSON.parse(stdout) as { tools: { name: string }[] }).tools.some((t) => t.name === 'echo'));
  });
});
