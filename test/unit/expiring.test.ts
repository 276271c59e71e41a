import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Expiring } from '../../src/expiring.ts';

test('an entry answers until its lifetime is over; take spends it', () => {
  let now = 1_000;
  const entries = new Expiring<string>({ ttlMs: 100, max: 10, now: () => now });
  entries.set('a', 'one');
  entries.set('b', 'two');
  assert.equal(entries.get('a'), 'one');
  assert.equal(entries.take('a'), 'one');
  assert.equal(entries.take('a'), undefined, 'spent');
  now += 100;
  assert.equal(entries.get('b'), 'two', 'alive at its last millisecond');
  now += 1;
  assert.equal(entries.take('b'), undefined, 'expired');
});

test('past the cap the oldest go first, and expired ones before them', () => {
  let now = 0;
  const entries = new Expiring<number>({ ttlMs: 50, max: 3, now: () => now });
  for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) entries.set(key, i);
  assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => entries.get(k)), [undefined, 1, 2, 3]);
  now = 60;
  entries.set('e', 4);
  entries.set('f', 5);
  entries.set('g', 6);
  assert.deepEqual(['b', 'c', 'd', 'e', 'f', 'g'].map((k) => entries.get(k)), [undefined, undefined, undefined, 4, 5, 6]);
});
