// The session store is what keeps abandoned sessions from growing without bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { SessionStore } from '../../src/proxy/sessions.ts';

function fakeTransport(closed: string[], id: string): Transport {
  return { start: async () => undefined, send: async () => undefined, close: async () => void closed.push(id) };
}

const owner = { server: 's', user: 'u', kind: 'streamable-http' } as const;

function store(options: { idleTtlMs: number; maxSessions: number }) {
  let now = 0;
  const closed: string[] = [];
  const sessions = new SessionStore({ ...options, now: () => now });
  const add = (id: string): void => sessions.add({ id, ...owner, transport: fakeTransport(closed, id) });
  return { sessions, closed, add, advance: (ms: number) => (now += ms) };
}

test('sessions unused past the TTL are closed; used ones live on', () => {
  const s = store({ idleTtlMs: 1_000, maxSessions: 10 });
  s.add('a');
  s.add('b');
  s.advance(600);
  assert.ok(s.sessions.touch('a', owner));
  s.advance(600);
  assert.equal(s.sessions.expire(), 1);
  assert.deepEqual(s.closed, ['b']);
  assert.equal(s.sessions.touch('b', owner), undefined, 'an expired id is unknown (404)');
  assert.ok(s.sessions.touch('a', owner));
});

test('past maxSessions the least recently used session is closed', () => {
  const s = store({ idleTtlMs: 60_000, maxSessions: 2 });
  s.add('a');
  s.add('b');
  s.sessions.touch('a', owner);
  s.add('c');
  assert.deepEqual(s.closed, ['b']);
  assert.equal(s.sessions.size, 2);
  assert.deepEqual([...s.sessions.countByServer()], [['s', 2]]);
});

test('closeAll closes every session once', () => {
  const s = store({ idleTtlMs: 60_000, maxSessions: 5 });
  s.add('a');
  s.add('b');
  s.sessions.closeAll();
  s.sessions.closeAll();
  assert.deepEqual(s.closed.sort(), ['a', 'b']);
  assert.equal(s.sessions.size, 0);
});
