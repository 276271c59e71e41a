import type { StdioStream } from '../backend.ts';
import type { StdioChild } from './child.ts';
import { describeExit } from './child.ts';

/**
 * A supervised stdio child as an upstream channel: each (re)spawn is a fresh
 * server to initialize. A child already up when the consumer attaches counts
 * as started then, so attaching late never misses the start.
 */
export function stdioChannel(child: StdioChild): StdioStream {
  return {
    send: (message) => child.send(message),
    onMessage: (handler) => child.on('message', handler),
    onStart: (handler) => {
      child.on('spawn', handler);
      if (child.status().state === 'running') queueMicrotask(handler);
    },
    onStop: (handler) => child.on('exit', (info) => handler(describeExit(info.code, info.signal))),
  };
}
