// One timer for many deadlines. Per-request timers cost a Timeout object,
// a list insertion and a removal each; this costs a comparison, and the
// owner's sweep runs only when the earliest deadline comes.

/**
 * A timer armed for the earliest of the deadlines it was told about. When it
 * fires, `sweep` handles everything due and returns the next deadline
 * (Infinity: none), for which the timer is armed again. Never holds the
 * process open.
 */
export class EarliestTimer {
  readonly #now: () => number;
  readonly #sweep: (now: number) => number;
  #timer: NodeJS.Timeout | undefined;
  #at = Infinity;

  constructor(now: () => number, sweep: (now: number) => number) {
    this.#now = now;
    this.#sweep = sweep;
  }

  /** Makes sure a sweep runs at `at` or earlier. */
  atLatest(at: number): void {
    if (at >= this.#at) return;
    clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, at - this.#now())).unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#at = Infinity;
    this.atLatest(this.#sweep(this.#now()));
  }
}
