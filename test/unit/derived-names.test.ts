// Every name berth derives from a server name (and an owner) is valid where it is used: a Kubernetes
// object name is a DNS-1123 label, a Docker container name matches the daemon's rule. Checked over
// every name the schema accepts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { containerName } from '../../src/backends/docker/spec.ts';
import { placementName } from '../../src/backends/kubernetes/objects.ts';
import { configSchema } from '../../src/config/schema.ts';

const schema = configSchema as unknown as { properties: { servers: { propertyNames: { pattern: string } } }; $defs: { backend: { properties: { owner: { pattern: string } } } } };
const serverName = fc.stringMatching(new RegExp(schema.properties.servers.propertyNames.pattern));
const owner = fc.stringMatching(new RegExp(schema.$defs.backend.properties.owner.pattern));
const userHash = fc.option(fc.stringMatching(/^[0-9a-f]{16}$/), { nil: undefined });
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DOCKER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

test('the schema refuses server names and owners that end in "-"', () => {
  assert.doesNotMatch('a-', new RegExp(schema.properties.servers.propertyNames.pattern));
  assert.doesNotMatch('team-', new RegExp(schema.$defs.backend.properties.owner.pattern));
});

test('every Kubernetes placement name is a DNS-1123 label', () => {
  fc.assert(
    fc.property(owner, serverName, userHash, (o, name, user) => {
      const derived = placementName(o, name, user);
      assert.match(derived, DNS_LABEL, derived);
    }),
    { numRuns: 2_000 },
  );
});

test('every Docker container name is one the daemon accepts', () => {
  fc.assert(
    fc.property(owner, serverName, userHash, (o, name, user) => {
      const unit = { name, specHash: '0123456789abcdef' } as Parameters<typeof containerName>[1];
      const derived = containerName(o, unit, user === undefined ? { replica: 0 } : { replica: 0, userHash: user });
      assert.match(derived, DOCKER_NAME, derived);
    }),
    { numRuns: 2_000 },
  );
});
