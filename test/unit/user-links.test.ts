// Per-user upstream connections: one per user and set of headers, renewed when
// the headers change, idle ones closed; and how status counts them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MessageChannel } from '../../src/proxy/mux/channel.ts';
import { statusRows } from '../../src/cli/status.ts';
import type { ServerStatus, StatusReport } from '../../src/cli/status-model.ts';
import { silentLogger } from '../../src/observe/log.ts';
import type { ConnectionStatus } from '../../src/proxy/upstream/http-upstream.ts';
import { summarizeConnections } from '../../src/proxy/upstream/http-upstream.ts';
import { Multiplexer } from '../../src/proxy/mux/multiplex.ts';
import { UserLinks } from '../../src/proxy/upstream/user-links.ts';

/** A channel that never starts: enough for a multiplexer with no sessions. */
const idleChannel = (): MessageChannel => ({ send: () => true, onMessage: () => undefined, onStart: () => undefined, onStop: () => undefined });

interface TestLink {
  readonly user: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly mux: Multiplexer;
  closed: boolean;
  close(): void;
}

function links(clock: { now: number }) {
  const opened: TestLink[] = [];
  const userLinks = new UserLinks<TestLink>({
    open: (user, headers) => {
      const link: TestLink = { user, headers, mux: new Multiplexer({ name: 'test', channel: idleChannel(), logger: silentLogger() }), closed: false, close: () => (link.closed = true) };
      opened.push(link);
      return link;
    },
    idleMs: 1_000,
    now: () => clock.now,
  });
  return { userLinks, opened };
}

describe('UserLinks', () => {
  test('one link per user while the headers stay the same; new headers open a new one', () => {
    const clock = { now: 0 };
    const { userLinks, opened } = links(clock);
    const first = userLinks.get('alice', { authorization: 'Bearer a1' });
    assert.equal(userLinks.get('alice', { authorization: 'Bearer a1' }), first);
    const renewed = userLinks.get('alice', { authorization: 'Bearer a2' });
    assert.notEqual(renewed, first);
    assert.deepEqual(renewed.headers, { authorization: 'Bearer a2' });
    userLinks.get('bob', { authorization: 'Bearer b1' });
    assert.deepEqual(opened.map((l) => l.user), ['alice', 'alice', 'bob']);
    assert.deepEqual(userLinks.links().map((l) => l.user).sort(), ['alice', 'bob']);
  });

  test('a call closes other users\' idle links at most once a minute, not on every call', () => {
    const clock = { now: 0 };
    const { userLinks, opened } = links(clock);
    const bob = userLinks.get('bob', { k: 'b' });
    clock.now = 59_000; // bob idle for far longer than idleMs, but the last sweep was under a minute ago
    userLinks.get('alice', { k: 'a' });
    assert.equal(bob.closed, false);
    assert.ok(userLinks.has('bob'));
    clock.now = 60_000;
    userLinks.get('alice', { k: 'a' });
    assert.equal(bob.closed, true, 'the idle link closed');
    assert.ok(!userLinks.has('bob'));
    assert.equal(opened.find((l) => l.user === 'alice')?.closed, false, 'the caller\'s own link stays');
  });

  test('drop closes the user\'s link; close closes every link', () => {
    const clock = { now: 0 };
    const { userLinks, opened } = links(clock);
    userLinks.get('alice', { k: 'a' });
    userLinks.get('bob', { k: 'b' });
    userLinks.drop('alice');
    assert.deepEqual(opened.map((l) => l.closed), [true, false]);
    userLinks.close();
    assert.deepEqual(opened.map((l) => l.closed), [true, true]);
    assert.deepEqual(userLinks.links(), []);
  });
});

describe('per-user connections in status', () => {
  const at = (state: ConnectionStatus['state'], since: string, lastError?: string): ConnectionStatus => ({ state, attempts: state === 'down' ? 3 : 0, since, ...(lastError === undefined ? {} : { lastError }) });

  test('are counted by state, with the error of the one that went down last', () => {
    const summary = summarizeConnections([at('connected', '2026-12-01T00:00:00Z'), at('down', '2026-12-01T00:00:02Z', 'HTTP 401'), at('down', '2026-12-01T00:00:01Z', 'HTTP 503'), at('connecting', '2026-12-01T00:00:03Z')]);
    assert.deepEqual(summary, { total: 4, connected: 1, connecting: 1, down: 2, lastError: 'HTTP 401' });
    assert.deepEqual(summarizeConnections([]), { total: 0, connected: 0, connecting: 0, down: 0 });
  });

  test('berth status prints a remote\'s connection state and error instead of a dash', () => {
    const server = (name: string, extra: Partial<ServerStatus>): ServerStatus => ({ name, kind: 'remote', sessions: 0, instances: [], ...extra });
    const report: StatusReport = {
      config: 'berth.yaml', generation: 1, lastReload: undefined, backend: 'local', units: [], routes: [], routeHashes: {},
      servers: [
        server('shared-sse', { connection: at('down', '2026-12-01T00:00:00Z', 'no connection within 10000 ms') }),
        server('per-user', { userConnections: summarizeConnections([at('connected', 'a'), at('down', 'b', 'HTTP 401')]) }),
        server('unused', { userConnections: summarizeConnections([]) }),
        server('passthrough', {}),
      ],
    };
    assert.deepEqual(statusRows(report).slice(1).map((r) => [r[0], r[3], r[6]]), [
      ['shared-sse', 'down', 'no connection within 10000 ms'],
      ['per-user', '1/2 users connected, 1 down', 'HTTP 401'],
      ['unused', 'no user connected', ''],
      ['passthrough', '-', ''],
    ]);
  });
});
