// Bounded line framing for a child's stdout and stderr.

/**
 * Splits a byte stream into lines (LF or CRLF) holding at most `maxBytes` of
 * one line: past that, the rest of the line is discarded as it arrives, and the
 * line is dropped (`drop`) or delivered cut short (`truncate`).
 */
const EMPTY = Buffer.alloc(0);
export const EDGE_BYTES = 256;

export class LineSplitter {
  readonly #maxBytes: number;
  readonly #mode: 'drop' | 'truncate';
  readonly #onLine: (line: Buffer, truncated: boolean) => void;
  readonly #onOverflow: () => void;
  readonly #onDropped: (head: Buffer, tail: Buffer) => void;
  #parts: Buffer[] = [];
  /** The start and end of a line being dropped: enough to tell which request it answered. */
  #head = EMPTY;
  #tail = EMPTY;
  #size = 0;
  #discarding = false;

  constructor(options: {
    maxBytes: number;
    mode: 'drop' | 'truncate';
    onLine: (line: Buffer, truncated: boolean) => void;
    onOverflow?: () => void;
    /** drop mode: a dropped line's first and last EDGE_BYTES. */
    onDropped?: (head: Buffer, tail: Buffer) => void;
  }) {
    this.#maxBytes = options.maxBytes;
    this.#mode = options.mode;
    this.#onLine = options.onLine;
    this.#onOverflow = options.onOverflow ?? (() => {});
    this.#onDropped = options.onDropped ?? (() => {});
  }

  /** Bytes of the current, unfinished line held in memory. */
  get bufferedBytes(): number {
    return this.#size;
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      if (!this.#discarding) this.#take(chunk, start, end);
      else if (this.#mode === 'drop') this.#keepTail(chunk.subarray(Math.max(start, end - EDGE_BYTES), end));
      if (newline === -1) return;
      this.#finish();
      start = newline + 1;
    }
  }

  /** The stream ended: an unterminated last line still counts. */
  end(): void {
    if (this.#size > 0 || (this.#discarding && this.#mode === 'truncate')) this.#finish();
    this.#discarding = false;
  }

  #take(chunk: Buffer, start: number, end: number): void {
    const room = this.#maxBytes - this.#size;
    if (end - start <= room) {
      if (end > start) this.#append(chunk.subarray(start, end));
      return;
    }
    if (this.#mode === 'truncate') {
      if (room > 0) this.#append(chunk.subarray(start, start + room));
    } else {
      const first = this.#parts[0] ?? chunk.subarray(start, end);
      this.#head = Buffer.from(first.subarray(0, EDGE_BYTES));
      this.#tail = EMPTY;
      this.#keepTail(chunk.subarray(Math.max(start, end - EDGE_BYTES), end));
      this.#parts = [];
      this.#size = 0;
    }
    this.#discarding = true;
    this.#onOverflow();
  }

  #keepTail(part: Buffer): void {
    this.#tail = Buffer.concat([this.#tail, part]).subarray(-EDGE_BYTES);
  }

  #append(part: Buffer): void {
    this.#parts.push(part);
    this.#size += part.length;
  }

  #finish(): void {
    const truncated = this.#discarding;
    const parts = this.#parts;
    this.#parts = [];
    this.#size = 0;
    this.#discarding = false;
    if (truncated && this.#mode === 'drop') {
      this.#onDropped(this.#head, this.#tail);
      this.#head = this.#tail = EMPTY;
      return;
    }
    let line = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    this.#onLine(line, truncated);
  }
}

/** One spawned process; events of a process that is no longer current are ignored. */
