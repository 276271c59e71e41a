// The backend contract suite on the local backend: real child processes.
import { LocalBackend } from '../../src/backends/local/index.ts';
import { hashSpec } from '../../src/desired/hash.ts';
import type { Unit, UnitSpec } from '../../src/desired/types.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { backendContract } from '../helpers/backend-contract.ts';
import type { UnitKind } from '../helpers/backend-contract.ts';
import { everythingServer } from '../helpers/berth.ts';

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
      // The local backend cannot run images: refused before anything starts.
      return { runtime: 'container', image: 'never/runs:here', port: 8080, path: '/mcp', transport: 'streamable-http', args: [], env: settings() };
  }
}

function makeUnit(name: string, kind: UnitKind): Unit {
  const spec = specOf(kind);
  return { name, scope: 'shared', spec, specHash: hashSpec({ spec, scope: 'shared', backend: 'local' }), replicas: 1, startupTimeoutMs: 30_000 };
}

backendContract(
  'local',
  (owner) => {
    const backend = new LocalBackend({ logger: silentLogger(), baseDir: process.cwd(), owner, backoff: { initialMs: 200, maxMs: 2_000 } });
    return { backend, writes: () => backend.writes };
  },
  makeUnit,
  {
    known: {
      'adopt: a new backend with the same owner lists the instances and ensure changes nothing':
        'local instances are child processes of one berth and end with it; a restarted berth starts them again (documented in docs/backends.md)',
      'a start that cannot happen: a retryable BackendError, and the instance listed with a failure class':
        'a local start fails in the child (command not found), reported as backoff or crash-loop with its reason; the one refusal before a start (runtime container) is not retryable',
    },
  },
);
