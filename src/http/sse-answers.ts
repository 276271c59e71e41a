// The SSE answer to one POST, event by event: each message event must be a
// JSON-RPC message a client can read. A client (the SDK's included) skips
// one it cannot read, so the request it answered would wait for its
// deadline. Instead an unreadable event becomes an error answer to its
// request, at once when its id can be read, or else, when the stream ends,
// to every request of the POST still unanswered.
import type { RequestId } from './jsonrpc.ts';
import { ErrorCode, errorResponse, responseIdOf } from './jsonrpc.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NOTHING = new Uint8Array(0);

export class SseAnswers {
  readonly #pending: Set<RequestId>;
  readonly #unusable: (reason: string) => string;
  /** Why an event of this stream could not be read, when its id could not be either. */
  #unread: string | undefined;

  /** `requests`: the ids the POST asked; `unusable` words the error, given what was wrong. */
  constructor(requests: readonly RequestId[], unusable: (reason: string) => string) {
    this.#pending = new Set(requests);
    this.#unusable = unusable;
  }

  /** The request `id` got its answer (berth's own error included). */
  answered(id: RequestId): void {
    this.#pending.delete(id);
  }

  /**
   * An event's bytes (blank line included): what goes on in its place. An
   * event the stream ended in the middle of (`complete` false) is no event
   * to a client: it goes nowhere, and the request it answered gets an error.
   */
  event(bytes: Uint8Array, complete = true): Uint8Array {
    const { type, data } = fieldsOf(decoder.decode(bytes));
    // Only message events carry JSON-RPC; an empty one (a priming event, a keep-alive) carries nothing.
    if ((type !== '' && type !== 'message') || data === '') return complete ? bytes : NOTHING;
    const read = complete ? readMessage(data) : { problem: 'the stream ended in the middle of an event', id: readMessage(data).id };
    if (read.problem === undefined) {
      if (read.id !== undefined) this.#pending.delete(read.id);
      return bytes;
    }
    const id = read.id ?? responseIdOf(data, data);
    if (id === undefined || !this.#pending.has(id)) {
      this.#unread ??= read.problem;
      return NOTHING;
    }
    this.#pending.delete(id);
    return this.#answer(id, read.problem);
  }

  /** At the stream's end: error answers to the requests left waiting by an event that could not be read. */
  end(): Uint8Array[] {
    const reason = this.#unread;
    if (reason === undefined) return [];
    const answers = [...this.#pending].map((id) => this.#answer(id, reason));
    this.#pending.clear();
    return answers;
  }

  #answer(id: RequestId, problem: string): Uint8Array {
    return encoder.encode(`event: message\ndata: ${JSON.stringify(errorResponse(id, ErrorCode.internalError, this.#unusable(problem)))}\n\n`);
  }
}

/** An event's type and its data lines joined, as the EventSource rules read them. */
function fieldsOf(text: string): { type: string; data: string } {
  let type = '';
  const data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(line[colon + 1] === ' ' ? colon + 2 : colon + 1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return { type, data: data.join('\n') };
}

/** What is wrong with a message, if anything, and the id of a response (read when it can be). */
function readMessage(data: string): { problem?: string; id?: RequestId } {
  let m: unknown;
  try {
    m = JSON.parse(data);
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` };
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m) || (m as { jsonrpc?: unknown }).jsonrpc !== '2.0') return { problem: 'not a JSON-RPC 2.0 message' };
  const { id, method, result, error } = m as { id?: unknown; method?: unknown; result?: unknown; error?: unknown };
  if (typeof method === 'string') return {};
  if (typeof id !== 'string' && typeof id !== 'number') return { problem: 'a JSON-RPC message with neither a method nor an id' };
  if (isObject(result) || (isObject(error) && typeof error['code'] === 'number' && typeof error['message'] === 'string')) return { id };
  return { problem: 'a JSON-RPC response with neither a result object nor an error', id };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
