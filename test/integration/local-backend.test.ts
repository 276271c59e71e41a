// The backend contract suite on the local backend: real child processes.
import { delimiter } from 'node:path';
import { LocalBackend } from '../../src/backends/local/index.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import type { Unit, UnitSpec } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { backendContract } from '../helpers/backend-contract.ts';
import type { Capabilities, UnitKind } from '../helpers/backend-contract.ts';
import { everythingServer, fixturesBin } from '../helpers/berth.ts';

const settings = (values: Record<string, string> = {}): UnitSpec['env'] => ({ values, sensitive: [], fromUser: [] });

function specOf(kind: UnitKind): UnitSpec {
  switch (kind) {
    case 'ok':
      return { runtime: 'command', command: process.execPath, args: [everythingServer, 'stdio'], env: settings() };
    case 'ok-v2':
      return { runtime: 'command', command: process.execPath, args: [everythingServer, 'stdio'], env: settings({ VERSION: '2' }) };
    case 'crashing':
      return { runtime: 'command', command: process.execPath, args: ['-e', "process.stderr.write('going down\\n'); process.exit(3)"], env: settings() };
    case 'failing':
      // Fails in the child, which the backend reports (the one refusal before a start, runtime container, is a combination below).
      return { runtime: 'command', command: '/nonexistent/berth-no-such-command', args: [], env: settings() };
  }
}

function unitOf(name: string, spec: UnitSpec): Unit {
  return { name, scope: 'shared', spec, specHash: hashSpec({ spec, scope: 'shared', backend: 'local' }), replicas: 1, startupTimeoutMs: 30_000 };
}

function makeUnit(name: string, kind: UnitKind): Unit {
  return unitOf(name, specOf(kind));
}

/** HTTP servers get their port in PORT; the shims in test/fixtures/bin stand in for npx and uvx. */
const withShims = settings({ PATH: `${fixturesBin}${delimiter}${process.env['PATH'] ?? ''}` });
const capabilities: Capabilities = {
  outlivesBerth: false,
  replace: 'beside',
  startFailure: 'reported',
  replicas: false,
  runtimes: {
    'npx stdio': (name) => unitOf(name, { runtime: 'npx', package: '@modelcontextprotocol/server-everything@2026.8.31', args: ['stdio'], env: withShims }),
    'uvx stdio': (name) => unitOf(name, { runtime: 'uvx', package: 'berth-echo-server', args: [], env: withShims }),
    'command stdio': (name) => unitOf(name, specOf('ok')),
    'command streamable-http': (name) => unitOf(name, { runtime: 'command', command: process.execPath, args: [everythingServer, 'streamableHttp'], transport: 'streamable-http', path: '/mcp', env: settings() }),
    'command sse': (name) => unitOf(name, { runtime: 'command', command: process.execPath, args: [everythingServer, 'sse'], transport: 'sse', path: '/sse', env: settings() }),
    'container streamable-http': { refused: 'invalid_spec' },
    'container sse': { refused: 'invalid_spec' },
  },
};

backendContract(
  'local',
  (owner) => {
    const backend = new LocalBackend({ logger: silentLogger(), baseDir: process.cwd(), owner, backoff: { initialMs: 200, maxMs: 2_000 } });
    return { backend, writes: () => backend.writes };
  },
  makeUnit,
  { capabilities },
);
