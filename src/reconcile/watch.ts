import type { FSWatcher } from 'node:fs';
import { lstatSync, realpathSync, watch } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../observe/log.ts';

export interface ConfigWatcherOptions {
  readonly file: string;
  readonly logger: Logger;
  /** Debounce of file events; editors and git write in bursts. */
  readonly debounceMs?: number;
}

/**
 * Says when the config, or a file it references, may have changed; the
 * controller then compares the versions it read with the files as they are,
 * so an event that says too much or comes late costs a stat, and one that is
 * lost is repaired by the next comparison.
 *
 * It watches each file's directory, not the file: editors that save by
 * rename, git-sync's symlink swap and Kubernetes ConfigMap updates all
 * replace the file, which a watch on the file itself would lose. Every
 * symlinked ancestor is watched in its parent too, and the watch is re-armed
 * when a swap moved the directory a file really lives in. A re-arm ends with
 * a call of `changed`: what changed while it re-armed is seen.
 *
 * Plain `fs.watch` on each directory (inotify on Linux): it is armed when the
 * call returns, so "armed before the first read" holds, and it reports a
 * renamed symlink as what it is.
 */
export class ConfigWatcher {
  readonly #o: ConfigWatcherOptions;
  #files: readonly string[];
  #armed: { readonly watchers: readonly FSWatcher[]; readonly shape: string } | undefined;
  #changed: (() => unknown) | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ConfigWatcherOptions) {
    this.#o = options;
    this.#files = [path.resolve(options.file)];
  }

  /** Arms the watch; call it before the first read, so no change after that read goes unseen. */
  start(): void {
    this.#arm();
  }

  /** From now on `changed` is called after each burst of events and after each re-arm. */
  onChange(changed: () => unknown): void {
    this.#changed = changed;
  }

  /**
   * The files a read used: the config file and its `${file:…}` references.
   * Re-arms when they are others, or live in other directories than the
   * armed watch's: a swap whose events the watch missed is followed too.
   */
  follow(files: readonly string[]): void {
    this.#files = [...new Set([path.resolve(this.#o.file), ...files.map((f) => path.resolve(f))])].sort();
    this.#rearmIfMoved();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounce);
    for (const watcher of this.#armed?.watchers ?? []) watcher.close();
  }

  #arm(): void {
    if (this.#closed) return;
    const targets = watchTargets(this.#files);
    const watchers: FSWatcher[] = [];
    const schedule = (dir: string, name: string): void => {
      const names = targets.get(dir);
      if (this.#closed || this.#armed?.watchers !== watchers || names === undefined || !names.some((n) => (n === '..*' ? name.startsWith('..') : n === name))) return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => {
        // A swap may have moved a file to another directory: watch that one from now on.
        if (!this.#rearmIfMoved()) this.#changed?.();
      }, this.#o.debounceMs ?? 200).unref();
    };
    for (const dir of targets.keys()) {
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => schedule(dir, String(name ?? '')));
        watcher.on('error', (err) => this.#o.logger.warn({ dir, err: err.message }, 'config watch error; the periodic resync still reads changes'));
        watchers.push(watcher);
      } catch (err) {
        // A directory that is gone now (mid-swap): the next read or resync re-arms.
        this.#o.logger.warn({ dir, err: (err as Error).message }, 'cannot watch a config directory; the periodic resync still reads changes');
      }
    }
    this.#armed = { watchers, shape: shapeOf(targets) };
  }

  /** Re-arms when the directories to watch are no longer the armed ones; says whether it did. */
  #rearmIfMoved(): boolean {
    const armed = this.#armed;
    if (armed === undefined || this.#closed || shapeOf(watchTargets(this.#files)) === armed.shape) return false;
    for (const watcher of armed.watchers) watcher.close();
    this.#arm();
    this.#changed?.();
    return true;
  }
}

/**
 * Directories to watch, each with the entry names that matter there: each
 * file and ConfigMap `..` entries in the directory it really lives in (a
 * watch on a symlinked directory sees only the link), and every symlinked
 * ancestor directory (git-sync's `repo` link) in its parent. A swap changes
 * the answer: that is when the watch is re-armed.
 */
function watchTargets(files: readonly string[]): Map<string, string[]> {
  const targets = new Map<string, string[]>();
  const add = (dir: string, name: string): void => {
    const names = targets.get(dir) ?? [];
    if (!names.includes(name)) names.push(name);
    targets.set(dir, names);
  };
  for (const file of files) {
    const dir = realDir(file) ?? path.dirname(file);
    add(dir, path.basename(file));
    add(dir, '..*');
    for (let up = path.dirname(file); up !== path.dirname(up); up = path.dirname(up)) if (isSymlink(up)) add(path.dirname(up), path.basename(up));
  }
  return targets;
}

/** What an arm watches, to tell when a swap moved it. */
function shapeOf(targets: ReadonlyMap<string, readonly string[]>): string {
  return JSON.stringify([...targets]);
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function realDir(file: string): string | undefined {
  try {
    return realpathSync(path.dirname(file));
  } catch {
    return undefined;
  }
}
