// The backend contract suite on a real Docker daemon.
import { after, before } from 'node:test';
import { backendContract } from '../helpers/backend-contract.ts';
import type { Capabilities, UnitKind } from '../helpers/backend-contract.ts';
import type { UnitSpec } from '../../src/desired/types.ts';
import { dockerBackend, dockerUnavailable, httpCommandSpec, httpServerSpec, removeOwned, stdioServerSpec, testImages, testSettings, testUnit } from '../helpers/docker.ts';

const unavailable = dockerUnavailable();
const owners = new Set<string>();
// The images are built (or found built) before the suite, so their build never counts against a case's timeout.
before(() => {
  if (unavailable === undefined) testImages();
}, { timeout: 600_000 });
after(async () => {
  for (const owner of owners) await removeOwned(owner);
});

function makeUnit(name: string, kind: UnitKind) {
  switch (kind) {
    case 'ok':
      return testUnit(name, httpServerSpec());
    case 'ok-v2':
      return testUnit(name, httpServerSpec({ VERSION: '2' }));
    case 'crashing':
      return testUnit(name, httpServerSpec({ EXIT_CODE: '3' }));
    case 'failing':
      return testUnit(name, httpServerSpec({}, { image: 'berth-test-missing:never-built' }));
  }
}

/** The runtime image has stand-ins for npx and uvx that run the fixture on stdio (test/fixtures/docker). */
const stdio = (runtime: 'npx' | 'uvx'): UnitSpec => ({ runtime, package: 'any-mcp-server', args: [], env: { values: {}, sensitive: [], fromUser: [] } });
const capabilities: Capabilities = {
  outlivesBerth: true,
  replace: 'beside',
  startFailure: 'rejects',
  replicas: false,
  runtimes: {
    'npx stdio': (name) => testUnit(name, stdio('npx')),
    'uvx stdio': (name) => testUnit(name, stdio('uvx')),
    'command stdio': (name) => testUnit(name, stdioServerSpec()),
    'command streamable-http': (name) => testUnit(name, httpCommandSpec('/mcp')),
    'command sse': (name) => testUnit(name, httpCommandSpec('/sse', 'sse')),
    'container streamable-http': (name) => testUnit(name, httpServerSpec()),
    'container sse': (name) => testUnit(name, httpServerSpec({}, { transport: 'sse' })),
  },
};

backendContract(
  'docker',
  (owner) => {
    owners.add(owner);
    const { backend, daemon } = dockerBackend(testSettings(owner));
    return { backend, writes: () => daemon.writes };
  },
  makeUnit,
  { capabilities, ...(unavailable === undefined ? {} : { skip: unavailable }) },
);
