// The backend contract suite on a real Docker daemon.
import { after, before } from 'node:test';
import { backendContract } from '../helpers/backend-contract.ts';
import type { UnitKind } from '../helpers/backend-contract.ts';
import { dockerBackend, dockerUnavailable, httpServerSpec, removeOwned, testImages, testSettings, testUnit } from '../helpers/docker.ts';

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

backendContract(
  'docker',
  (owner) => {
    owners.add(owner);
    const { backend, daemon } = dockerBackend(testSettings(owner));
    return { backend, writes: () => daemon.writes };
  },
  makeUnit,
  { ...(unavailable === undefined ? {} : { skip: unavailable }) },
);
