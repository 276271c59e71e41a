import { lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { watch } from 'chokidar';
import type { FSWatcher } from 'chokidar';
import type { Logger } from '../observe/log.ts';

export interface ConfigWatcherOptions {
  readonly file: string;
  readonly logger: Logger;
  /** Debounce of file events; editors and git write in bursts. */
  readonly debounceMs?: number;
}

/**
 * Says when the config file may have changed; the controller then reads it.
 * It watches the config's directory, not the file: editors that save by
 * rename, git-sync's symlink swap and Kubernetes ConfigMap updates all
 * replace the file, which a watch on the file itself would lose. Every
 * symlinked ancestor is watched in its parent too, and the watch is re-armed
 * when a swap moved the directory the config really lives in.
 */
export class ConfigWatcher {
  readonly #o: ConfigWatcherOptions;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ConfigWatcherOptions) {
    this.#o = options;
  }

  /** Calls `changed` (debounced) after each burst of changes; `changed` resolves once the change was handled. */
  start(changed: () => Promise<unknown>): void {
    // chokidar reports nothing until its first scan is done: an edit landing
    // before that is caught by comparing the file with how it was at start.
    const before = fileVersion(this.#o.file);
    this.#arm(changed, () => {
      if (fileVersion(this.#o.file) !== before) void changed();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounce);
    await this.#watcher?.close();
  }

  #arm(changed: () => Promise<unknown>, onReady?: () => void): void {
    const file = this.#o.file;
    const targets = watchTargets(path.resolve(file));
    const armedIn = realDir(file);
    const watcher = watch([...targets.keys()], { depth: 0, ignoreInitial: true, followSymlinks: false });
    const schedule = (entry: string): void => {
      const names = targets.get(path.dirname(entry));
      const name = path.basename(entry);
      if (this.#closed || names === undefined || !names.some((n) => (n === '..*' ? name.startsWith('..') : n === name))) return;
      clearTimeout(this.#debounce);
      this.#debounce = setTimeout(() => {
        void changed().finally(() => {
          if (realDir(file) === armedIn || this.#closed || this.#watcher !== watcher) return;
          void watcher.close();
          this.#arm(changed);
        });
      }, this.#o.debounceMs ?? 200).unref();
    };
    watcher.on('add', schedule).on('change', schedule).on('unlink', schedule).on('addDir', schedule).on('unlinkDir', schedule);
    if (onReady !== undefined) watcher.once('ready', onReady);
    watcher.on('error', (err) => this.#o.logger.warn({ err: (err as Error).message }, 'config watch error; still watching'));
    this.#watcher = watcher;
  }
}

/**
 * Directories to watch, each with the entry names that matter there: the
 * config file and ConfigMap `..` entries in its directory, and every
 * symlinked ancestor directory (git-sync's `repo` link) in its parent.
 */
function watchTargets(file: string): Map<string, string[]> {
  const targets = new Map<string, string[]>([[path.dirname(file), [path.basename(file), '..*']]]);
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (isSymlink(dir)) targets.set(path.dirname(dir), [...(targets.get(path.dirname(dir)) ?? []), path.basename(dir)]);
  }
  return targets;
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** What identifies one version of the file (through symlinks): inode, size and modification time. */
function fileVersion(file: string): string {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

function realDir(file: string): string | undefined {
  try {
    return realpathSync(path.dirname(path.resolve(file)));
  } catch {
    return undefined;
  }
}
