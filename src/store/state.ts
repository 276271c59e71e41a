import { randomBytes } from 'node:crypto';
import { Low } from 'lowdb';
import { BerthError } from '../errors.ts';
import { AtomicJsonFile } from './file.ts';
import type { Keyring, StoredValue } from './seal.ts';
import { deriveKeyring } from './seal.ts';

/** Per-user credentials: user → server → name → value. */
export type CredentialsSection = Record<string, Record<string, Record<string, StoredValue>>>;

/**
 * Upstream OAuth: each owner's token set per server, and berth's own client
 * registrations per server and authorization server (issuer). Every value sealed.
 */
export interface OAuthSection {
  tokens?: Record<string, Record<string, StoredValue>>;
  clients?: Record<string, Record<string, StoredValue>>;
}

/** The whole state file. Sections other parts of berth add go beside `credentials`. */
export interface StateDocument {
  version: 1;
  credentials: CredentialsSection;
  /** This installation's own secrets, made on first use. */
  installation?: { labelSecret?: string };
  oauth?: OAuthSection;
}

export interface StateOptions {
  /** Absolute path of the state file. */
  readonly path: string;
  /** Configured secrets, current first; empty when no key is configured. */
  readonly keys: readonly string[];
  /** Told when the file berth read or wrote is gone: every write is refused until it is back. */
  readonly onMissing?: (message: string) => void;
}

/**
 * berth's state file: read once, then every change is a read-modify-write of
 * the whole file, one at a time. Re-reading before each change picks up what
 * another process (`berth state rotate-key`) wrote meanwhile.
 */
export class StateStore {
  readonly keyring: Keyring;
  readonly path: string;
  readonly #db: Low<StateDocument>;
  readonly #file: AtomicJsonFile<StateDocument>;
  readonly #onMissing: ((message: string) => void) | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** Whether the file existed: read at open or written since. A known file that is gone is an alarm, never an empty state. */
  #known = false;
  #missing: string | undefined;

  private constructor(options: StateOptions) {
    this.path = options.path;
    this.keyring = deriveKeyring(options.keys);
    this.#file = new AtomicJsonFile<StateDocument>(options.path);
    this.#db = new Low(this.#file, emptyState());
    this.#onMissing = options.onMissing;
  }

  /** Why the state file cannot be written (it was removed while berth served), or undefined. */
  get missing(): string | undefined {
    return this.#missing;
  }

  /** Looks for the file now (for /status): a removed file raises the alarm before anyone writes. */
  async check(): Promise<string | undefined> {
    await this.#queue;
    if (this.#known) await this.#load().catch(() => undefined);
    return this.#missing;
  }

  static async open(options: StateOptions): Promise<StateStore> {
    const store = new StateStore(options);
    await store.#file.removeStaleTemps();
    await store.#load();
    return store;
  }

  /** The state as of the last read or change; do not mutate it. */
  get data(): Readonly<StateDocument> {
    return this.#db.data;
  }

  /**
   * Applies `change` to a fresh read of the file and writes the result. The
   * change says whether it changed anything; nothing is written when it did not.
   */
  update<T>(change: (data: StateDocument) => Promise<{ readonly changed: boolean; readonly value: T }>): Promise<T> {
    const run = async (): Promise<T> => {
      await this.#load();
      const outcome = await change(this.#db.data);
      if (!outcome.changed) return outcome.value;
      try {
        await this.#db.write();
        this.#known = true;
      } catch (err) {
        // Readers must not see a change that is not on disk.
        await this.#load().catch(() => undefined);
        throw err;
      }
      return outcome.value;
    };
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /**
   * The key of the HMAC that names users on backend objects (container and
   * pod labels): made once per installation and kept here, so labels stay the
   * same across restarts and cannot be reversed from a list of likely names.
   */
  labelSecret(): Promise<string> {
    return this.update(async (data) => {
      const existing = data.installation?.labelSecret;
      if (typeof existing === 'string' && existing !== '') return { changed: false, value: existing };
      const made = randomBytes(32).toString('base64url');
      data.installation = { ...data.installation, labelSecret: made };
      return { changed: true, value: made };
    });
  }

  async #load(): Promise<void> {
    // Not Low.read(): a file never written starts empty, and a change whose write failed is not kept.
    const read = await this.#file.read();
    if (read === null && this.#known) {
      // Removed while berth serves: an empty state now would overwrite everyone's credentials with one user's.
      const message = `the state file ${this.path} was removed while berth was serving; berth keeps serving what it read and refuses every change until the file is back (restore it from a backup) or berth is restarted (which starts with an empty state)`;
      if (this.#missing === undefined) this.#onMissing?.(message);
      this.#missing = message;
      throw new BerthError('state_missing', message);
    }
    if (read !== null) {
      this.#known = true;
      this.#missing = undefined;
    }
    const data = (read ?? emptyState()) as Partial<StateDocument>;
    if (data.version !== 1 || typeof data.credentials !== 'object' || data.credentials === null) {
      throw new BerthError('state_unreadable', `the state file ${this.path} is not a berth state file (version 1 with \`credentials\`)`);
    }
    this.#db.data = data as StateDocument;
  }
}

function emptyState(): StateDocument {
  return { version: 1, credentials: {} };
}

/** An own property of a record; never one inherited from Object.prototype (a user named `__proto__`). */
export function ownEntry<V>(record: Readonly<Record<string, V>> | undefined, key: string): V | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Sets an own property, safe for any key. */
export function putEntry<V>(record: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}
