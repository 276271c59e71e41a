import type { BigIntStats } from 'node:fs';
import { statSync } from 'node:fs';

/**
 * One file a config was made from, as it was when read: the config file or
 * a `${file:…}` it references. A watch compares it with the file as it is
 * now; any difference means the config must be read again.
 */
export interface SourceVersion {
  readonly path: string;
  readonly version: string;
}

/** Stands for a file that could not be opened: its appearance is a change too. */
export const MISSING = 'missing';

/** Device, inode, size and the modification and change times in ns: an atomic rename, an edit in place and a symlink swap each change it. */
export function versionOfStats(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

/** The version of a file as it is now, through symlinks. */
export function currentVersion(file: string): string {
  try {
    return versionOfStats(statSync(file, { bigint: true }));
  } catch {
    return MISSING;
  }
}

/** Whether any of the files is no longer the version that was read. */
export function changedSince(sources: readonly SourceVersion[]): boolean {
  return sources.some((s) => currentVersion(s.path) !== s.version);
}
