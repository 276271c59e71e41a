import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** Events a session keeps for resumption; older ones are gone and a resume past them replays what is left. */
const MAX_EVENTS = 256;

interface StoredEvent {
  readonly id: string;
  readonly stream: string;
  readonly message: JSONRPCMessage;
}

/**
 * Resumability for one session (SSE `Last-Event-ID`): a client whose stream
 * broke reconnects and receives what it missed, from a bounded ring so an
 * abandoned session never grows without limit.
 */
export class SessionEventStore implements EventStore {
  #events: StoredEvent[] = [];
  #seq = 0;

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const id = `${streamId}:${++this.#seq}`;
    this.#events.push({ id, stream: streamId, message });
    // Trimmed in batches, so storing stays O(1) amortised.
    if (this.#events.length > 2 * MAX_EVENTS) this.#events = this.#events.slice(-MAX_EVENTS);
    return id;
  }

  async getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    const cut = eventId.lastIndexOf(':');
    return cut < 0 ? undefined : eventId.slice(0, cut);
  }

  async replayEventsAfter(lastEventId: string, { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> }): Promise<string> {
    const stream = (await this.getStreamIdForEventId(lastEventId)) ?? '';
    const after = Number(lastEventId.slice(lastEventId.lastIndexOf(':') + 1));
    for (const event of this.#events) {
      if (event.stream !== stream || Number(event.id.slice(event.id.lastIndexOf(':') + 1)) <= after) continue;
      await send(event.id, event.message);
    }
    return stream;
  }
}
