// List, then watch from the list's resourceVersion; on a dropped connection
// watch again from the last version seen (bookmarks keep it fresh), and on
// 410 Gone list again, reporting what vanished meanwhile. This is what an
// informer does, small enough to read.
import type { KubernetesObject } from '@kubernetes/client-node';
import { Watch } from '@kubernetes/client-node';
import { backoffDelay, RECONNECT_BACKOFF } from '../../backoff.ts';
import type { KubeApi } from './api.ts';

export type WatchUpdate<T> = { readonly kind: 'upsert'; readonly object: T } | { readonly kind: 'delete'; readonly object: T };

export interface WatchTarget {
  readonly apiVersion: string;
  readonly kind: string;
  /** URL path of the collection, e.g. /api/v1/namespaces/x/pods. */
  readonly path: string;
  readonly namespace: string;
  readonly labelSelector: string;
}

export interface WatchStats {
  relists: number;
  reconnects: number;
  /** Lists and watches that failed (refused, unreachable, ended before the server said anything), each followed by a backoff. */
  failures: number;
  /** Changes the API sent (not bookmarks), before the stream coalesced any. */
  received: number;
}

/** Runs until the signal aborts; `onUpdate` sees every change, including those found by a re-list. */
export async function watchObjects<T extends KubernetesObject>(api: KubeApi, target: WatchTarget, onUpdate: (update: WatchUpdate<T>) => void, signal: AbortSignal, stats: WatchStats = newWatchStats()): Promise<void> {
  const known = new Map<string, T>();
  let resourceVersion: string | undefined;
  let failures = 0;
  const backOff = async (): Promise<void> => {
    failures++;
    stats.failures++;
    await delay(backoffDelay(failures, RECONNECT_BACKOFF), signal);
  };
  while (!signal.aborted) {
    try {
      if (resourceVersion === undefined) {
        const list = await api.list<T>(target.apiVersion, target.kind, target.namespace, target.labelSelector, signal);
        const seen = new Set<string>();
        for (const object of list.items) {
          const name = object.metadata?.name ?? '';
          seen.add(name);
          known.set(name, object);
          onUpdate({ kind: 'upsert', object });
        }
        for (const [name, object] of known) {
          if (seen.has(name)) continue;
          known.delete(name);
          onUpdate({ kind: 'delete', object });
        }
        resourceVersion = list.resourceVersion;
      }
      const outcome = await watchOnce<T>(api, target, resourceVersion, signal, (type, object) => {
        resourceVersion = object.metadata?.resourceVersion ?? resourceVersion;
        if (type === 'BOOKMARK') return;
        stats.received++;
        const name = object.metadata?.name ?? '';
        if (type === 'DELETED') {
          known.delete(name);
          onUpdate({ kind: 'delete', object });
        } else {
          known.set(name, object);
          onUpdate({ kind: 'upsert', object });
        }
      });
      if (signal.aborted) break;
      if (outcome.gone) {
        stats.relists++;
        resourceVersion = undefined;
      } else {
        stats.reconnects++;
      }
      // A watch that ended before the server said anything (refused, unreachable, cut at once) is a
      // failure: without a pause it is tried again at once, thousands of times a second. A quiet watch
      // the client timed out was connected, and one that heard events was healthy: reconnect at once.
      if (outcome.heard || outcome.timedOut) failures = 0;
      else await backOff();
    } catch {
      // The API is unreachable or refused the list: back off, then start over from a list.
      resourceVersion = undefined;
      await backOff();
    }
  }
}

export function newWatchStats(): WatchStats {
  return { relists: 0, reconnects: 0, failures: 0, received: 0 };
}

/**
 * `watchObjects` as a stream: each update becomes what `map` makes of it
 * (`map` may read more first), until the signal aborts or the consumer stops
 * iterating, which ends the watch too. The queue holds at most one update per
 * object, its latest: an object that changed again before the consumer took it
 * is mapped once, as it is now, so a slow consumer costs memory per object,
 * never per event.
 */
export async function* watchStream<T extends KubernetesObject, E>(api: KubeApi, target: WatchTarget, signal: AbortSignal, stats: WatchStats, map: (update: WatchUpdate<T>, later: Later<T>) => readonly E[] | Promise<readonly E[]>): AsyncGenerator<E> {
  const stopped = new AbortController();
  const both = AbortSignal.any([signal, stopped.signal]);
  const queue = new Map<string, WatchUpdate<T>>();
  const timers = new Set<NodeJS.Timeout>();
  let wake: (() => void) | undefined;
  const push = (update: WatchUpdate<T>): void => {
    queue.set(update.object.metadata?.name ?? '', update);
    wake?.();
  };
  const later: Later<T> = (afterMs, update) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      const next = update();
      if (next !== undefined) push(next);
    }, afterMs);
    timers.add(timer);
  };
  const watching = watchObjects<T>(api, target, push, both, stats);
  both.addEventListener('abort', () => wake?.(), { once: true });
  try {
    while (!both.aborted) {
      const first = queue.entries().next();
      if (first.done === true) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const [name, next] = first.value;
      queue.delete(name);
      yield* await map(next, later);
    }
  } finally {
    for (const timer of timers) clearTimeout(timer);
    stopped.abort();
    await watching;
  }
}

/**
 * Several streams as one, each item as it comes. Ending (the consumer stops
 * iterating) aborts `stop`, the streams' signal, so none keeps waiting on its
 * watch, then returns every stream.
 */
export async function* mergeStreams<E>(streams: readonly AsyncIterator<E>[], stop: AbortController): AsyncGenerator<E> {
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<E> }>>();
  const pull = (index: number): void => {
    pending.set(index, (streams[index] as AsyncIterator<E>).next().then((result) => ({ index, result })));
  };
  streams.forEach((_, index) => pull(index));
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values());
      if (result.done === true) {
        pending.delete(index);
        continue;
      }
      pull(index);
      yield result.value;
    }
  } finally {
    stop.abort();
    await Promise.all(streams.map((stream) => stream.return?.()));
  }
}

/** Has `update` (made when the time comes; undefined for none) mapped again after `afterMs`: a retry of work that failed. */
export type Later<T> = (afterMs: number, update: () => WatchUpdate<T> | undefined) => void;

interface WatchOutcome {
  /** The server answered 410 Gone: the version is too old, list again. */
  readonly gone: boolean;
  /** The server sent at least one event or bookmark. */
  readonly heard: boolean;
  /** The client ended a connected watch that stayed quiet (its inactivity timeout). */
  readonly timedOut: boolean;
}

function watchOnce<T extends KubernetesObject>(api: KubeApi, target: WatchTarget, resourceVersion: string, signal: AbortSignal, onEvent: (type: string, object: T) => void): Promise<WatchOutcome> {
  return new Promise((resolve, reject) => {
    let gone = false;
    let heard = false;
    let controller: AbortController | undefined;
    const abort = (): void => controller?.abort();
    signal.addEventListener('abort', abort, { once: true });
    // The client calls this once: when the stream ends, or with the error that ended or refused it.
    const finish = (err: unknown): void => {
      signal.removeEventListener('abort', abort);
      resolve({ gone, heard, timedOut: err instanceof Error && err.name === 'TimeoutError' });
    };
    new Watch(api.config)
      .watch(
        target.path,
        { resourceVersion, allowWatchBookmarks: true, labelSelector: target.labelSelector },
        (type: string, object: T & { code?: number }) => {
          // An expired version arrives as an ERROR event carrying a 410 Status.
          if (type === 'ERROR') gone = object.code === 410;
          else {
            heard = true;
            onEvent(type, object);
          }
        },
        finish,
      )
      .then((c) => {
        controller = c;
        if (signal.aborted) c.abort();
      }, (err: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(err as Error);
      });
  });
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
