/** Events a session keeps for resumption, by count and by bytes; a resume past them replays what is left. */
const MAX_EVENTS = 256;
const MAX_BYTES = 1024 * 1024;

interface StoredEvent {
  readonly stream: string;
  readonly seq: number;
  readonly data: string;
}

export interface StoredFrame {
  readonly id: string;
  readonly data: string;
}

/**
 * Resumability for one session (SSE `Last-Event-ID`): every event sent on an
 * SSE stream gets the id `<stream>:<seq>`, and a client whose stream broke
 * reconnects and receives what it missed, from a history bounded in count and
 * bytes so an abandoned session never grows without limit.
 */
export class SessionEventStore {
  #events: StoredEvent[] = [];
  /** Index of the oldest kept event: trimming moves it, compaction happens in batches. */
  #head = 0;
  #bytes = 0;
  #seq = 0;

  /** Keeps one event's serialized message; returns its id. */
  store(stream: string, data: string): string {
    const seq = ++this.#seq;
    this.#events.push({ stream, seq, data });
    this.#bytes += data.length;
    while (this.#events.length - this.#head > MAX_EVENTS || (this.#bytes > MAX_BYTES && this.#events.length - this.#head > 1)) {
      this.#bytes -= (this.#events[this.#head++] as StoredEvent).data.length;
    }
    if (this.#head >= MAX_EVENTS) {
      this.#events = this.#events.slice(this.#head);
      this.#head = 0;
    }
    return `${stream}:${seq}`;
  }

  /** The kept events of the stream `eventId` belongs to that came after it, oldest first. */
  after(eventId: string): StoredFrame[] {
    const stream = streamOf(eventId);
    const after = Number(eventId.slice(eventId.lastIndexOf(':') + 1));
    const out: StoredFrame[] = [];
    for (let i = this.#head; i < this.#events.length; i++) {
      const e = this.#events[i] as StoredEvent;
      if (e.stream === stream && e.seq > after) out.push({ id: `${e.stream}:${e.seq}`, data: e.data });
    }
    return out;
  }
}

/** The stream an event id names, or undefined when it is not one of berth's ids. */
export function streamOf(eventId: string): string | undefined {
  const cut = eventId.lastIndexOf(':');
  return cut <= 0 || !/^\d+$/.test(eventId.slice(cut + 1)) ? undefined : eventId.slice(0, cut);
}
