// A composite whose component is down: its tools are left out at once, calls
// to them say why, and clients hear when the component is back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connectClient, everythingServer, everythingYaml, freePort, startTestBerth, status } from '../helpers/berth.ts';
import { waitFor } from '../helpers/wait.ts';

test('a component that refuses connections is left out fast, reported, and announced when it comes back', async () => {
  const port = await freePort();
  const remote = `  far:\n    type: remote\n    url: http://127.0.0.1:${port}/mcp\n`;
  const box = `  box:\n    type: composite\n    components:\n      - server: everything\n        tools: { include: [echo] }\n      - server: far\n        prefix: far_\n        timeout: 2s\n        tools: { include: [get-sum] }\n`;
  const b = await startTestBerth(everythingYaml() + remote + box);
  let server: ReturnType<typeof spawn> | undefined;
  try {
    const client = await connectClient(b.url, 'box');
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
    const started = Date.now();
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['echo']);
    assert.ok(Date.now() - started < 8_000, `listed in ${Date.now() - started} ms`);
    const report = await status(b.url);
    const far = report.servers.find((s) => s.name === 'box')?.components?.find((c) => c.server === 'far');
    assert.equal(far?.state, 'down');

    const before = changed;
    server = spawn(process.execPath, [everythingServer, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
    await waitFor(() => changed > before, { timeoutMs: 60_000, message: 'tools/list_changed when the component is back' });
    await waitFor(async () => (await client.listTools()).tools.length === 2, { timeoutMs: 20_000, message: 'far_get-sum listed' });
    const result = await client.callTool({ name: 'far_get-sum', arguments: { a: 1, b: 2 } });
    assert.match(JSON.stringify(result.content), /3/);

    server.kill();
    await new Promise((resolve) => server?.once('exit', resolve));
    const err = await waitFor(async () => {
      const e = await client.callTool({ name: 'far_get-sum', arguments: { a: 1, b: 2 } }).then(() => undefined, (x: unknown) => x);
      return e instanceof McpError ? e : undefined;
    }, { timeoutMs: 30_000, message: 'a call to the gone component fails' });
    assert.match(err.message, /far/);
    await client.close();
  } finally {
    server?.kill();
    await b.stop();
  }
});
