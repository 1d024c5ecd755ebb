// Tree order of a trace's spans (shared by `mycel trace` and the dashboard): children under their parent by start
// time, orphans as their own roots, spans of a parent-id cycle kept rather than lost.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spanTreeOrder } from './span-tree.js';

function span(id: string, parent: string | null, start: number): { spanId: string; parentSpanId: string | null; startTime: number } {
  return { spanId: id, parentSpanId: parent, startTime: start };
}

test('tree order puts children under their parent by start time; orphans and cycles are not lost', () => {
  const spans = [span('c2', 'p', 30), span('p', null, 0), span('c1', 'p', 10), span('g', 'c1', 11), span('o', 'missing', 50), span('y1', 'y2', 60), span('y2', 'y1', 61)];
  const order = spanTreeOrder(spans).map((r) => `${r.depth}:${r.span.spanId}`);
  assert.deepEqual(order, ['0:p', '1:c1', '2:g', '1:c2', '0:o', '0:y1', '0:y2']);
});
