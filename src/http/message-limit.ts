// The size limit on what an upstream server sends berth: a JSON answer, one
// event of an SSE stream. Counted as the bytes arrive, so an endless answer
// costs berth the limit at most, and only the one request fails.
import { BerthError } from '../errors.ts';
import { ErrorCode, responseIdOf } from './jsonrpc.ts';
import type { SseAnswers } from './sse-answers.ts';

/** The default, the same as a stdio server's line limit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

/** An upstream's answer went past the limit; the request it answers fails, nothing else. */
export class MessageTooLarge extends BerthError {
  constructor(limit: number) {
    super('upstream_message_too_large', tooLargeMessage(limit));
  }
}

export function tooLargeMessage(limit: number): string {
  return `the server's response is larger than berth's limit of ${limit} bytes per message`;
}

/** A body's bytes, passed on until more than `limit` arrived; then the stream fails with MessageTooLarge. */
export function limitBody(limit: number): TransformStream<Uint8Array, Uint8Array> {
  let size = 0;
  return new TransformStream({
    transform(chunk, controller) {
      size += chunk.byteLength;
      if (size > limit) controller.error(new MessageTooLarge(limit));
      else controller.enqueue(chunk);
    },
  });
}

const EDGE_BYTES = 256;
const LF = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * An SSE stream with every event bounded: an event goes on whole once its
 * blank line arrives; one over `limit` bytes is discarded as it arrives and,
 * when it answered a request, replaced by an error answer to that request.
 * The stream itself goes on. With `answers` (the stream answers a POST),
 * every event within the limit is checked as well.
 */
export function limitSseEvents(limit: number, onDropped: (id: string | number | undefined) => void = () => {}, answers?: SseAnswers): TransformStream<Uint8Array, Uint8Array> {
  /** The current event's bytes, while it is within the limit. */
  let parts: Uint8Array[] = [];
  let size = 0;
  let dropping = false;
  /** A dropped event's first and last bytes: enough to tell which request it answered. */
  let head: Uint8Array = new Uint8Array(0);
  let tail: Uint8Array = new Uint8Array(0);
  /** The current line's length without its LF, and its last byte (a CR before LF is no content). */
  let lineBytes = 0;
  let lineLast = 0;

  const take = (piece: Uint8Array): void => {
    size += piece.byteLength;
    if (!dropping && size > limit) {
      dropping = true;
      head = concat([...parts, piece]).subarray(0, EDGE_BYTES);
      parts = [];
    }
    if (dropping) tail = piece.byteLength >= EDGE_BYTES ? piece.slice(-EDGE_BYTES) : concat([tail, piece]).slice(-EDGE_BYTES);
    else parts.push(piece);
  };
  const endEvent = (controller: TransformStreamDefaultController<Uint8Array>): void => {
    if (dropping) {
      const id = responseIdOf(dataOf(decoder.decode(head)), dataOf(decoder.decode(tail)));
      onDropped(id);
      if (id !== undefined) {
        answers?.answered(id);
        const answer = { jsonrpc: '2.0', id, error: { code: ErrorCode.internalError, message: tooLargeMessage(limit) } };
        controller.enqueue(encoder.encode(`event: message\ndata: ${JSON.stringify(answer)}\n\n`));
      }
    } else if (answers !== undefined) {
      enqueueSome(controller, answers.event(concat(parts)));
    } else {
      for (const part of parts) controller.enqueue(part);
    }
    parts = [];
    size = 0;
    dropping = false;
    head = tail = new Uint8Array(0);
  };

  return new TransformStream({
    transform(chunk, controller) {
      let start = 0;
      while (start < chunk.byteLength) {
        const newline = chunk.indexOf(LF, start);
        const end = newline === -1 ? chunk.byteLength : newline + 1;
        const content = (newline === -1 ? end : newline) - start;
        if (content > 0) {
          lineBytes += content;
          lineLast = chunk[start + content - 1] ?? 0;
        }
        take(chunk.subarray(start, end));
        if (newline !== -1) {
          const blank = lineBytes === 0 || (lineBytes === 1 && lineLast === CR);
          lineBytes = 0;
          if (blank) endEvent(controller);
        }
        start = end;
      }
    },
    // An unfinished last event is no event: over the limit, its request is answered as for a whole one;
    // within it, it goes on as it came, or, answering a POST, its request gets an error.
    flush(controller) {
      if (dropping) endEvent(controller);
      else if (answers !== undefined && size > 0) enqueueSome(controller, answers.event(concat(parts), false));
      else for (const part of parts) controller.enqueue(part);
      for (const answer of answers?.end() ?? []) controller.enqueue(answer);
    },
  });
}

/** The JSON of an event's `data:` lines, enough of it for responseIdOf: the field names and line breaks removed. */
function dataOf(text: string): string {
  return text.replace(/^(?:event|id|retry):[^\n]*\n/gm, '').replace(/^data: ?/gm, '').replace(/\r?\n/g, '');
}

function enqueueSome(controller: TransformStreamDefaultController<Uint8Array>, bytes: Uint8Array): void {
  if (bytes.byteLength > 0) controller.enqueue(bytes);
}

function concat(pieces: readonly Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0] ?? new Uint8Array(0);
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.byteLength;
  }
  return out;
}
