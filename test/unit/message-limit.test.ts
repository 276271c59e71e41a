import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MessageTooLarge, limitBody, limitSseEvents } from '../../src/http/message-limit.ts';
import { SseAnswers } from '../../src/http/sse-answers.ts';

/** The stream's output for `chunks` pushed through `transform`, as text. */
async function run(transform: TransformStream<Uint8Array, Uint8Array>, chunks: readonly string[]): Promise<string> {
  const encoder = new TextEncoder();
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  return new Response(input.pipeThrough(transform)).text();
}

/** `text` cut at the given offsets. */
function cut(text: string, at: readonly number[]): string[] {
  const points = [...new Set(at.map((n) => n % (text.length + 1)))].sort((a, b) => a - b);
  return [0, ...points].map((p, i) => text.slice(p, points[i] ?? text.length));
}

const event = (id: number, text: string, eol = '\n'): string => `event: message${eol}data: ${JSON.stringify({ jsonrpc: '2.0', id, result: { text } })}${eol}${eol}`;

describe('limitSseEvents', () => {
  test('events within the limit pass unchanged, however the stream is cut', async () => {
    const stream = event(1, 'a') + ': keep-alive\n\n' + event(2, 'b'.repeat(200), '\r\n') + event(3, 'c');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 12 }), async (at) => {
        assert.equal(await run(limitSseEvents(300), cut(stream, at)), stream);
      }),
      { numRuns: 200 },
    );
  });

  test('an event over the limit is replaced by an error answer to its id, the others pass, however the stream is cut', async () => {
    const big = event(2, 'x'.repeat(5_000));
    const stream = event(1, 'a') + big + event(3, 'c');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 12 }), async (at) => {
        const dropped: unknown[] = [];
        const out = await run(limitSseEvents(1_000, (id) => dropped.push(id)), cut(stream, at));
        const data = out.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { id: number; error?: { message: string } });
        assert.deepEqual(data.map((d) => d.id), [1, 2, 3]);
        assert.match(data[1]?.error?.message ?? '', /larger than berth's limit of 1000 bytes/);
        assert.deepEqual(dropped, [2]);
      }),
      { numRuns: 200 },
    );
  });

  test('an over-limit event that answers nothing (a notification) is dropped without a substitute', async () => {
    const note = `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'x'.repeat(5_000) } })}\n\n`;
    assert.equal(await run(limitSseEvents(1_000), [note, event(1, 'a')]), event(1, 'a'));
  });
});

describe('limitSseEvents answering a POST (SseAnswers)', () => {
  const answers = (ids: number[]): SseAnswers => new SseAnswers(ids, (reason) => `unusable: ${reason}`);
  const answersIn = (out: string): { id: number; result?: unknown; error?: { message: string } }[] => out.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { id: number });

  test('readable events, a server request and keep-alives pass unchanged, however the stream is cut', async () => {
    const request = `data: ${JSON.stringify({ jsonrpc: '2.0', id: 'srv-1', method: 'sampling/createMessage', params: {} })}\n\n`;
    const stream = 'id: prime\ndata:\n\n' + event(1, 'a') + ': keep-alive\n\n' + request + event(2, 'b', '\r\n');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 12 }), async (at) => {
        assert.equal(await run(limitSseEvents(1_000, undefined, answers([1, 2])), cut(stream, at)), stream);
      }),
      { numRuns: 200 },
    );
  });

  test('an unreadable event with a readable id is replaced by an error answer to it at once', async () => {
    const out = await run(limitSseEvents(1_000, undefined, answers([1, 2])), [`data: {"jsonrpc":"2.0","id":2,"result":{oops}}\n\n`, event(1, 'a')]);
    assert.deepEqual(answersIn(out).map((a) => [a.id, a.error?.message.slice(0, 20)]), [[2, 'unusable: not JSON ('], [1, undefined]]);
  });

  test('an unreadable event without an id fails, at the end, only the requests nothing answered', async () => {
    const out = await run(limitSseEvents(1_000, undefined, answers([1, 2, 3])), [event(1, 'a'), 'data: [1, 2]\n\n', event(3, 'c')]);
    assert.deepEqual(answersIn(out).map((a) => [a.id, a.error?.message]), [[1, undefined], [3, undefined], [2, 'unusable: not a JSON-RPC 2.0 message']]);
  });

  test('a stream ended in the middle of an answer fails its request; one that ends cleanly adds nothing', async () => {
    const out = await run(limitSseEvents(1_000, undefined, answers([4])), [event(4, 'a').trimEnd()]);
    assert.deepEqual(answersIn(out).map((a) => [a.id, a.error?.message]), [[4, 'unusable: the stream ended in the middle of an event']]);
    assert.equal(await run(limitSseEvents(1_000, undefined, answers([4])), ['id: prime\ndata:\n\n']), 'id: prime\ndata:\n\n', 'left to resume');
  });
});

describe('limitBody', () => {
  test('a body within the limit passes; one over it fails the stream with MessageTooLarge', async () => {
    assert.equal(await run(limitBody(10), ['12345', '67890']), '1234567890');
    await assert.rejects(run(limitBody(10), ['12345', '678901']), (err: unknown) => err instanceof MessageTooLarge && err.code === 'upstream_message_too_large');
  });
});
