// /readyz's answer from the desired units and the pool's view, on an injected clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StartupReadiness } from '../../src/cli/readiness.ts';
import type { DesiredState, Unit } from '../../src/desired/types.ts';
import type { UpstreamState, UpstreamStatus } from '../../src/proxy/upstream/instance-upstream.ts';

function unit(name: string, scope: 'shared' | 'per-user' = 'shared'): Unit {
  return { name, scope, spec: { runtime: 'command', command: 'x', args: [], env: { values: {}, sensitive: [], fromUser: [] } }, specHash: name, replicas: 1, startupTimeoutMs: 10_000 };
}

function desired(...units: Unit[]): DesiredState {
  return { units, routes: [] } as unknown as DesiredState;
}

function upstream(name: string, state: UpstreamState, extra: Partial<UpstreamStatus> = {}): UpstreamStatus {
  return { unit: name, state, sessions: 0, pending: 0, instance: { id: name, owner: 'o', unit: name, specHash: name, replica: 0, state: 'running', restarts: 0 }, ...extra };
}

test('readiness: not ready until every shared server is ready or has had its verdict, then ready for good', () => {
  let now = 0;
  const readiness = new StartupReadiness(() => now);
  const state = desired(unit('a'), unit('b'), unit('mine', 'per-user'));
  assert.deepEqual(readiness.check(undefined, []), { ready: false, notReady: [] }, 'no config yet');
  assert.deepEqual(readiness.check(state, []), { ready: false, notReady: ['a', 'b'] }, 'no instance yet');
  assert.deepEqual(readiness.check(state, [upstream('a', 'ready'), upstream('b', 'starting')]), { ready: false, notReady: ['b'] });
  assert.deepEqual(readiness.check(state, [upstream('a', 'ready'), upstream('b', 'failing')]), { ready: false, notReady: ['b'] }, 'a server in backoff may still come up');
  assert.deepEqual(readiness.check(state, [upstream('a', 'ready'), upstream('b', 'starting', { gaveUp: true })]), { ready: true, notReady: ['b'] }, 'crash loop or startup timeout: a verdict');
  assert.deepEqual(readiness.check(state, [upstream('a', 'starting'), upstream('b', 'starting')]), { ready: true, notReady: ['a', 'b'] }, 'stays ready once ready');
  const slow = new StartupReadiness(() => now);
  now = 9_999;
  assert.equal(slow.check(state, []).ready, false);
  now = 10_000;
  assert.deepEqual(slow.check(state, []), { ready: true, notReady: ['a', 'b'] }, 'the startup timeout passed with no instance');
  assert.deepEqual(new StartupReadiness(() => now).check(desired(unit('mine', 'per-user')), []), { ready: true, notReady: [] }, 'per-user servers start on use');
});
