// How long `berth import` takes on a registry listing, and how much memory:
// a generated dump of 500 servers (default; more with an argument) in the
// shape of GET /v0/servers, mixing npm, PyPI, OCI-over-HTTP, remotes with
// headers and URL variables, and MCPB-only servers that are named and left
// out. In this process: CPU time of this thread and wall time of read +
// translate + render, median (fastest–slowest) after a warm-up, and the heap
// the result keeps. Then the command as users run it, `node bin/berth.js
// import dump.json`, as a child: its wall time and peak RSS (what `time -v`
// calls maximum resident set size), Node's own start-up included.
// Run: npm run bench:import [-- --runs N] [SERVERS…]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { importClientConfig } from '../src/clients/import.ts';
import { renderFragment } from '../src/clients/render.ts';
import type { Spread } from './validate.ts';
import { measure } from './validate.ts';

const BIN = fileURLToPath(new URL('../bin/berth.js', import.meta.url));

/** One server.json of the registry, of kind `i % 5`. */
function server(i: number): Record<string, unknown> {
  const name = `io.github.bench-${i}/server-${i}`;
  const common = { $schema: 'https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json', name, description: `Benchmark server ${i}`, version: `1.${i}.0` };
  const secret = { name: `SERVICE_${i}_API_KEY`, description: 'API key', isRequired: true, isSecret: true };
  switch (i % 5) {
    case 0:
      return { ...common, packages: [{ registryType: 'npm', identifier: `@bench/server-${i}`, version: `1.${i}.0`, transport: { type: 'stdio' }, packageArguments: [{ type: 'named', name: '--mode', default: 'fast' }, { type: 'positional', valueHint: 'root', value: '/data' }], environmentVariables: [secret, { name: 'LOG_LEVEL', default: 'info' }] }] };
    case 1:
      return { ...common, packages: [{ registryType: 'pypi', identifier: `bench-server-${i}`, version: `0.${i}.1`, transport: { type: 'stdio' }, environmentVariables: [{ name: 'REGION', default: 'eu-west-1' }] }] };
    case 2:
      return { ...common, packages: [{ registryType: 'oci', identifier: `ghcr.io/bench/server-${i}`, version: `1.${i}.0`, transport: { type: 'streamable-http', url: 'http://localhost:{PORT}/mcp' }, runtimeArguments: [{ type: 'named', name: '-e', value: 'MODE=bench' }], environmentVariables: [{ name: 'PORT', default: '8080' }, secret] }] };
    case 3:
      return { ...common, remotes: [{ type: 'streamable-http', url: `https://{tenant}.bench-${i}.example.com/mcp`, variables: { tenant: { isRequired: true, description: 'Tenant' } }, headers: [{ name: 'X-API-Key', isRequired: true, isSecret: true }, { name: 'X-Region', default: 'eu' }] }] };
    default:
      return { ...common, packages: [{ registryType: 'mcpb', identifier: `https://example.com/bench-${i}.mcpb`, fileSha256: 'f'.repeat(64), transport: { type: 'stdio' } }] };
  }
}

export function registryDump(count: number): string {
  const servers = Array.from({ length: count }, (_, i) => ({ server: server(i), _meta: { 'io.modelcontextprotocol.registry/official': { status: 'active', isLatest: true } } }));
  return JSON.stringify({ servers, metadata: { count } }, null, 2);
}

const show = (s: Spread): string => `${s.median.toFixed(1)} (${s.min.toFixed(1)}–${s.max.toFixed(1)})`;

function main(): void {
  const { values, positionals } = parseArgs({ options: { runs: { type: 'string' } }, allowPositionals: true });
  const sizes = positionals.length > 0 ? positionals.map(Number) : [500];
  const runs = values.runs === undefined ? 10 : Number(values.runs);
  const dir = mkdtempSync(path.join(tmpdir(), 'berth-bench-import-'));
  console.log(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.versions.node}, load ${loadavg()[0]?.toFixed(1)}`);
  console.log('servers     KB   imported   CPU ms               wall ms              heap kept MB   CLI wall ms   CLI peak RSS MB');
  try {
    for (const size of sizes) {
      const text = registryDump(size);
      const file = path.join(dir, 'dump.json');
      writeFileSync(file, text);
      const once = () => {
        const outcome = importClientConfig(file, text, { secrets: 'auto' });
        return { outcome, fragment: renderFragment(outcome.imported, 'dump.json', 'MCP Registry server.json') };
      };
      const { cpu, wall } = measure(once, runs);
      globalThis.gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      const kept = once();
      globalThis.gc?.();
      const heapKept = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
      const cli = spawnSync('/usr/bin/time', ['-f', '%e %M', process.execPath, BIN, 'import', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      const [cliWall = 'NaN', cliRss = 'NaN'] = (cli.stderr.trim().split('\n').at(-1) ?? '').split(' ');
      const imported = `${kept.outcome.imported.servers.length}/${size}`;
      const heap = globalThis.gc === undefined ? 'n/a (--expose-gc)' : heapKept.toFixed(1);
      console.log(
        `${String(size).padStart(7)} ${(text.length / 1024).toFixed(0).padStart(6)}   ${imported.padStart(8)}   ${show(cpu).padEnd(20)} ${show(wall).padEnd(20)} ${heap.padStart(12)}   ${(Number(cliWall) * 1000).toFixed(0).padStart(11)}   ${(Number(cliRss) / 1024).toFixed(0).padStart(15)}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) main();
