// Waterfall order: parents before children, siblings by start time, depth by nesting; orphans and spans that point
// at each other still show; the time axis spans the whole trace.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Span } from './api.js';
import { waterfallRows } from './waterfall.js';

const span = (spanId: string, parentSpanId: string | null, startTime: number, durationMs: number): Span => ({ traceId: 'ab'.repeat(16), spanId, parentSpanId, service: 's', name: spanId, kind: 'server', startTime, durationMs, status: 'ok', attributes: {} });

test('call order with depths, and the trace\'s extent', () => {
  const { rows, start, duration } = waterfallRows([
    span('c2', 'b', 1006, 2),
    span('a', null, 1000, 20),
    span('b', 'a', 1001, 10),
    span('c1', 'b', 1002, 3),
    span('d', 'a', 1012, 9),
  ]);
  assert.deepEqual(rows.map((r) => `${r.span.spanId}@${r.depth}`), ['a@0', 'b@1', 'c1@2', 'c2@2', 'd@1']);
  assert.equal(start, 1000);
  assert.equal(duration, 21);
});

test('a span whose parent never arrived, and a cycle, are still drawn once each', () => {
  const { rows } = waterfallRows([span('x', 'missing', 5, 1), span('p', 'q', 1, 1), span('q', 'p', 2, 1)]);
  assert.deepEqual(rows.map((r) => r.span.spanId).sort(), ['p', 'q', 'x']);
  assert.equal(waterfallRows([]).rows.length, 0);
});
