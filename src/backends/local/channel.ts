import type { UpstreamChannel } from '../../proxy/multiplex.ts';
import type { StdioChild } from './child.ts';
import { describeExit } from './child.ts';

/** A supervised stdio child as the multiplexer's upstream: each (re)spawn is a fresh server to initialize. */
export function stdioChannel(child: StdioChild): UpstreamChannel {
  return {
    send: (message) => child.send(message),
    onMessage: (handler) => child.on('message', handler),
    onStart: (handler) => child.on('spawn', handler),
    onStop: (handler) => child.on('exit', (info) => handler(describeExit(info.code, info.signal))),
  };
}
