import type { ServerResponse } from 'node:http';
import type { Logger } from '../observe/log.ts';

/**
 * Bytes a response may hold for a client that is not reading (beyond what the
 * kernel's socket buffer took) before berth closes the stream.
 */
export const MAX_QUEUED_BYTES = 1024 * 1024;

/**
 * True (and the response destroyed, with a log line) when a client has left
 * more than `limit` bytes unread. Streams are written without waiting for
 * 'drain' (an upstream shared by many sessions cannot wait for one), so the
 * bytes the socket has not taken are the queue, and this is its bound; the
 * session's event store keeps recent events for a resume (Last-Event-ID).
 */
export function exceedsQueue(res: ServerResponse, log: Logger, limit = MAX_QUEUED_BYTES): boolean {
  if (res.writableLength <= limit) return false;
  log.warn({ queuedBytes: res.writableLength, limit }, 'stream closed: the client is not reading it');
  res.destroy();
  return true;
}
