// The session store is what keeps abandoned sessions from growing without bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Identity } from '../../src/identity.ts';
import { SessionStore } from '../../src/proxy/downstream/sessions.ts';

function fakeTransport(closed: string[], id: string): Transport {
  return { start: async () => undefined, send: async () => undefined, close: async () => void closed.push(id) };
}

const owner = { server: 's', user: 'u', kind: 'streamable-http' } as const;
const identity = (user: string, groups: string[] = []): Identity => ({ user, key: user, groups, scopes: [], provider: 'apiKey' });

function store(options: { idleTtlMs: number; maxSessions: number; maxSessionsPerClient?: number }) {
  let now = 0;
  const closed: string[] = [];
  const evicted: string[] = [];
  const sessions = new SessionStore({ ...options, now: () => now, onEvict: (entry, reason) => evicted.push(`${entry.id} ${reason}`) });
  const add = (id: string, client = 'c', who = identity(owner.user)) => sessions.add({ id, server: owner.server, kind: owner.kind, identity: who, client, transport: fakeTransport(closed, id) });
  return { sessions, closed, evicted, add, advance: (ms: number) => (now += ms) };
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
  assert.deepEqual(s.evicted, ['b idle']);
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
  assert.deepEqual(s.evicted, ['b total-limit']);
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

test('a client past its own cap loses its own least recently used session, never another client\'s', () => {
  const s = store({ idleTtlMs: 60_000, maxSessions: 100, maxSessionsPerClient: 3 });
  s.add('alice-1', 'alice');
  for (let i = 1; i <= 50; i++) {
    s.add(`mallory-${i}`, 'mallory');
    if (i === 2) s.sessions.touch('mallory-1', owner); // used: mallory-2 is now the oldest
  }
  assert.ok(s.sessions.touch('alice-1', owner), 'the other client\'s session lives');
  assert.equal(s.sessions.size, 4);
  assert.deepEqual(s.evicted.slice(0, 2), ['mallory-2 client-limit', 'mallory-1 client-limit']);
  assert.equal(s.evicted.length, 47);
  assert.ok(s.evicted.every((e) => e.endsWith('client-limit') && e.startsWith('mallory-')));
  assert.ok(s.sessions.touch('mallory-50', owner) && s.sessions.touch('mallory-49', owner) && s.sessions.touch('mallory-48', owner));
});

test('deleted and closed sessions free their client\'s share', () => {
  const s = store({ idleTtlMs: 60_000, maxSessions: 100, maxSessionsPerClient: 2 });
  s.add('a', 'x');
  s.add('b', 'x');
  s.sessions.delete('a');
  s.sessions.close('b');
  s.add('c', 'x');
  s.add('d', 'x');
  assert.deepEqual(s.evicted, []);
  assert.equal(s.sessions.size, 2);
});

test('revoke closes the sessions a reloaded config no longer admits, and says why', () => {
  const s = store({ idleTtlMs: 60_000, maxSessions: 10 });
  s.add('alice-1', 'c1', identity('alice', ['eng']));
  s.add('bob-1', 'c2', identity('bob', ['ops']));
  s.add('alice-2', 'c1', identity('alice', ['eng']));
  assert.equal(s.sessions.revoke((entry) => entry.identity.groups.includes('eng')), 1);
  assert.deepEqual(s.closed, ['bob-1']);
  assert.deepEqual(s.evicted, ['bob-1 access-revoked']);
  assert.equal(s.sessions.size, 2);
  assert.equal(s.sessions.touch('bob-1', { ...owner, user: 'bob' }), undefined, 'a revoked id is unknown (404)');
});

test('a session in use (holding a GET stream) is never idle, and the last its client\'s cap gives up', () => {
  const s = store({ idleTtlMs: 1_000, maxSessions: 10, maxSessionsPerClient: 2 });
  const streaming = s.add('stream');
  const release = s.sessions.hold(streaming);
  s.add('idle');
  s.advance(5_000);
  assert.equal(s.sessions.expire(), 1, 'only the session without a stream idled out');
  assert.deepEqual(s.evicted, ['idle idle']);
  s.add('b');
  s.add('c');
  assert.deepEqual(s.evicted, ['idle idle', 'b client-limit'], 'the cap takes the idle session, not the older one holding a stream');
  release();
  s.advance(500);
  assert.equal(s.sessions.expire(), 0, 'the stream\'s end counts as its last use');
  s.advance(600);
  assert.equal(s.sessions.expire(), 2);
});
