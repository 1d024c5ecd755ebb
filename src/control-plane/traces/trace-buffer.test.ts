import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReceivedSpan } from './otlp-decode.js';
import { TraceBuffer } from './trace-buffer.js';

const tid = (n: number) => n.toString(16).padStart(32, '0');
const sid = (n: number) => n.toString(16).padStart(16, '0');
function span(trace: number, id: number, parent: number | null, over: Partial<ReceivedSpan> = {}): ReceivedSpan {
  return { traceId: tid(trace), spanId: sid(id), parentSpanId: parent === null ? null : sid(parent), service: 'web', name: `span ${id}`, kind: 'server', startTime: 1000 + id, durationMs: 10, status: 'ok', attributes: {}, ...over };
}

test('spans group into traces; the summary names the root, services, duration and errors', () => {
  const b = new TraceBuffer();
  b.add([span(1, 2, 1, { service: 'api', startTime: 1002, durationMs: 5, status: 'error' })]);
  b.add([span(1, 1, null, { service: 'web', name: 'GET /', startTime: 1000, durationMs: 12.5 })]);
  const [t] = b.list(10);
  assert.deepEqual(t, { traceId: tid(1), rootService: 'web', rootName: 'GET /', startTime: 1000, durationMs: 12.5, spanCount: 2, services: ['api', 'web'], error: true });
  assert.deepEqual(b.get(tid(1))?.map((s) => s.spanId), [sid(1), sid(2)]);
  assert.equal(b.get(tid(9)), undefined);
});

test('a trace whose root has not arrived takes its earliest orphan as root', () => {
  const b = new TraceBuffer();
  b.add([span(1, 3, 2, { name: 'late' , startTime: 1010 }), span(1, 2, 99, { name: 'orphan', startTime: 1005 })]);
  assert.equal(b.list(1)[0]!.rootName, 'orphan');
});

test('bounded: oldest-updated traces go first, spans per trace and in all are capped', () => {
  const b = new TraceBuffer({ maxTraces: 3, maxSpansPerTrace: 4, maxSpans: 10 });
  for (let t = 1; t <= 5; t++) b.add([span(t, 1, null, { startTime: t })]);
  assert.equal(b.size, 3);
  assert.deepEqual(b.list(10).map((s) => s.traceId), [tid(5), tid(4), tid(3)]);
  // Updating trace 3 makes it the most recent; a new trace then evicts 4.
  b.add([span(3, 2, 1)]);
  b.add([span(6, 1, null)]);
  assert.equal(b.get(tid(4)), undefined);
  assert.ok(b.get(tid(3)));
  for (let i = 10; i < 20; i++) b.add([span(6, i, 1)]);
  assert.equal(b.get(tid(6))?.length, 4);
  assert.equal(b.droppedSpans, 7);
  // Re-sent spans replace their copy and do not count twice.
  b.add([span(6, 1, null, { name: 'again' })]);
  assert.equal(b.get(tid(6))?.length, 4);
  for (let t = 7; t < 40; t++) b.add([span(t, 1, null), span(t, 2, 1), span(t, 3, 1), span(t, 4, 1)]);
  assert.ok(b.spans <= 10, `${b.spans} spans`);
  assert.ok(b.size <= 3);
  assert.equal(b.spans, [...Array(40).keys()].reduce((n, t) => n + (b.get(tid(t))?.length ?? 0), 0));
});

test('list filters by service and limits the count, newest first', () => {
  const b = new TraceBuffer();
  for (let t = 1; t <= 6; t++) b.add([span(t, 1, null, { service: t % 2 === 0 ? 'even' : 'odd', startTime: t })]);
  assert.deepEqual(b.list(2, 'even').map((s) => s.traceId), [tid(6), tid(4)]);
  assert.equal(b.list(50, 'none').length, 0);
});
