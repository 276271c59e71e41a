import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Adapter } from 'lowdb';
import { BerthError } from '../errors.ts';

/**
 * A lowdb adapter that replaces the file atomically and durably: the new text
 * goes to a temp file that is fsynced, renamed over the old one, and then the
 * directory is fsynced so the rename itself survives a power cut. A crash at
 * any point leaves either the old file or the new one, never a mix.
 */
export class AtomicJsonFile<T> implements Adapter<T> {
  readonly file: string;
  #seq = 0;

  constructor(file: string) {
    this.file = file;
  }

  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      throw new BerthError('state_unreadable', `cannot read the state file ${this.file} (${code ?? 'unknown error'})`, { cause: err });
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new BerthError('state_unreadable', `the state file ${this.file} is not valid JSON; restore it from a backup or move it away to start empty`, { cause: err });
    }
  }

  async write(data: T): Promise<void> {
    const dir = path.dirname(this.file);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = `${this.file}.${process.pid}.${++this.#seq}.tmp`;
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(data, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.file);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw new BerthError('state_unwritable', `cannot write the state file ${this.file} (${(err as NodeJS.ErrnoException).code ?? 'unknown error'})`, { cause: err });
    }
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Removes temp files that writers killed mid-write left behind; a live writer's files stay. */
  async removeStaleTemps(): Promise<void> {
    const base = path.basename(this.file);
    const names = await readdir(path.dirname(this.file)).catch(() => []);
    for (const name of names) {
      const pid = staleTempPid(base, name);
      if (pid !== undefined && !isRunning(pid)) await unlink(path.join(path.dirname(this.file), name)).catch(() => undefined);
    }
  }
}

function staleTempPid(base: string, name: string): number | undefined {
  if (!name.startsWith(`${base}.`) || !name.endsWith('.tmp')) return undefined;
  const match = /^(\d+)\.\d+$/.exec(name.slice(base.length + 1, -'.tmp'.length));
  return match === null ? undefined : Number(match[1]);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
