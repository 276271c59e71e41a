// The front door's checks on their own: which Host names a listen address
// answers to, and that a client on another host is refused while no auth
// provider is enforced (tests cannot open connections from other hosts).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { checkHost, originPolicy } from '../../src/http/guard.ts';
import { createAuthenticator } from '../../src/auth/chain.ts';
import { Gate } from '../../src/auth/gate.ts';
import { ANONYMOUS } from '../../src/identity.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { frontDoor } from '../../src/proxy/server.ts';

function request(headers: Record<string, string>, remoteAddress = '127.0.0.1', method = 'GET'): IncomingMessage {
  return { headers, method, socket: { remoteAddress } } as unknown as IncomingMessage;
}

const LOCAL = (): string[] => ['buildhost', '10.0.0.5', 'fe80::1'];

const cases: readonly { name: string; listen: { host: string; publicUrl?: string }; accept: string[]; refuse: string[] }[] = [
  { name: 'loopback: loopback names', listen: { host: '127.0.0.1' }, accept: ['127.0.0.1:8080', 'localhost:8080', '[::1]:8080', 'LOCALHOST'], refuse: ['attacker.example', '10.0.0.5:8080', '127.0.0.2:8080'] },
  { name: 'another loopback address: its own name too', listen: { host: '127.0.0.2' }, accept: ['127.0.0.2:8080', 'localhost:8080'], refuse: ['attacker.example:8080'] },
  { name: 'IPv6 loopback', listen: { host: '::1' }, accept: ['[::1]:8080', 'localhost'], refuse: ['attacker.example'] },
  { name: 'every interface: loopback names, this host\'s names and addresses', listen: { host: '0.0.0.0' }, accept: ['localhost:8080', 'buildhost:8080', '10.0.0.5:8080', '[fe80::1]:8080'], refuse: ['attacker.example:8080', '0.0.0.0:8080'] },
  { name: 'one interface: only that address', listen: { host: '10.0.0.5' }, accept: ['10.0.0.5:8080'], refuse: ['localhost:8080', 'attacker.example'] },
  { name: 'publicUrl adds its host', listen: { host: '0.0.0.0', publicUrl: 'https://mcp.example.com' }, accept: ['mcp.example.com', 'mcp.example.com:443'], refuse: ['other.example.com'] },
];

describe('Host check', () => {
  for (const c of cases) {
    it(c.name, () => {
      const policy = originPolicy(c.listen, LOCAL);
      for (const host of c.accept) assert.equal(checkHost(request({ host }), policy), undefined, `${host} should be accepted`);
      for (const host of c.refuse) assert.match(checkHost(request({ host }), policy) ?? '', /not allowed/, `${host} should be refused`);
    });
  }
});

describe('front door identity', () => {
  const policy = originPolicy({ host: '0.0.0.0' }, LOCAL);
  const gate = new Gate({ authenticator: createAuthenticator(undefined, { logger: silentLogger() }), logger: silentLogger() });
  it('a loopback client passes the door and is anonymous', async () => {
    const req = request({ host: 'localhost:8080' }, '127.0.0.1');
    const res = new ServerResponse(req);
    assert.equal(frontDoor(req, res, policy), true);
    assert.deepEqual(await gate.admit(req, res, '/mcp/x', () => undefined), ANONYMOUS);
  });
  it('a client on another host gets 403 while no auth provider is configured', async () => {
    const req = request({ host: '10.0.0.5:8080' }, '10.0.0.9');
    const res = new ServerResponse(req);
    assert.equal(frontDoor(req, res, policy), true, 'its Host names this machine');
    assert.equal(await gate.admit(req, res, '/mcp/x', () => undefined), undefined);
    assert.equal(res.statusCode, 403);
    const ops = new ServerResponse(req);
    assert.equal(await gate.admitOperator(req, ops), false);
    assert.equal(ops.statusCode, 403);
  });
});
