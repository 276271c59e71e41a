import { isDeepStrictEqual } from 'node:util';
import type { BerthConfiguration } from '../config/types.gen.ts';
import type { Logger } from '../observe/log.ts';
import type { AuthenticatorOptions } from './chain.ts';
import { checkAuthConfig, createAuthenticator } from './chain.ts';
import { Gate } from './gate.ts';

export interface GatesOptions {
  /** The listen settings berth started with: they are read once, so a reload keeps them. */
  readonly listen: BerthConfiguration['listen'];
  readonly logger: Logger;
  readonly jwksCooldownMs?: number;
}

/** A candidate gate: refused with the reasons, or ready to swap in (the controller's `AuthSink` takes it). */
export type PreparedGate =
  | { readonly kind: 'rejected'; readonly errors: readonly string[] }
  | { readonly kind: 'ready'; readonly changed: boolean; swap(): void };

/**
 * The running gate, rebuilt from each accepted config's `auth` section beside
 * the old one and swapped in one assignment, like the route table: requests
 * in flight finish with the gate they started with, the next one meets the
 * new keys, providers and issuers. Providers whose settings did not change
 * are carried over with their caches. A candidate whose `auth` berth must not
 * serve (`none` on an exposed listener, say) is refused with the whole config.
 */
export class Gates {
  readonly #o: GatesOptions;
  #current: Gate;
  #auth: BerthConfiguration['auth'];

  /** The gate for the config berth starts with; the caller has checked it with `checkAuthConfig`. */
  constructor(auth: BerthConfiguration['auth'], options: GatesOptions) {
    this.#o = options;
    this.#auth = auth;
    this.#current = this.#build(auth, undefined);
  }

  get current(): Gate {
    return this.#current;
  }

  prepare(config: Pick<BerthConfiguration, 'auth'>): PreparedGate {
    const problems = checkAuthConfig({ auth: config.auth, ...(this.#o.listen === undefined ? {} : { listen: this.#o.listen }) });
    if (problems.length > 0) return { kind: 'rejected', errors: problems.map((p) => `${p.path}: ${p.message} (${p.code})`) };
    if (isDeepStrictEqual(config.auth, this.#auth)) return { kind: 'ready', changed: false, swap: () => undefined };
    const next = this.#build(config.auth, this.#current);
    return {
      kind: 'ready',
      changed: true,
      swap: () => {
        this.#current = next;
        this.#auth = config.auth;
      },
    };
  }

  #build(auth: BerthConfiguration['auth'], previous: Gate | undefined): Gate {
    const { listen, logger } = this.#o;
    const options: AuthenticatorOptions = { logger, ...(this.#o.jwksCooldownMs === undefined ? {} : { jwksCooldownMs: this.#o.jwksCooldownMs }), ...(previous === undefined ? {} : { previous: previous.authenticator }) };
    return new Gate({
      authenticator: createAuthenticator(auth, options),
      logger,
      ...(listen?.publicUrl === undefined ? {} : { publicUrl: listen.publicUrl }),
      ...(listen?.adminGroup === undefined ? {} : { adminGroup: listen.adminGroup }),
    });
  }
}
