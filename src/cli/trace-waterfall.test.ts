import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTraceList, renderWaterfall, type WaterfallSpan } from './trace-waterfall.js';

function span(id: string, parent: string | null, service: string, start: number, dur: number, over: Partial<WaterfallSpan> = {}): WaterfallSpan {
  return { traceId: 'ab'.repeat(16), spanId: id, parentSpanId: parent, service, name: `GET /${id}`, kind: 'server', startTime: start, durationMs: dur, status: 'ok', attributes: {}, ...over };
}

test('the waterfall scales bars to the trace, indents by depth and marks errors with their reason', () => {
  const t0 = 1764000000000;
  const out = renderWaterfall('ab'.repeat(16), [
    span('p', null, 'web', t0, 20, { kind: 'client', name: 'GET /' }),
    span('c', 'p', 'api', t0 + 10, 10, { status: 'error', attributes: { 'mycel.error': 'upstream-reset' } }),
  ], 20);
  const lines = out.trimEnd().split('\n');
  assert.match(lines[0]!, /^trace abab\S+ {3}20\.0 ms {3}2 spans {3}1 with errors$/);
  assert.match(lines[1]!, /^web GET \/ \(client\) +20\.0 ms {2}\|█{20}\|$/);
  assert.match(lines[2]!, /^ {2}api GET \/c \(server\) +10\.0 ms {2}\| {10}x{10}\| {2}ERROR upstream-reset$/);
  assert.equal(renderWaterfall('x', []), 'trace x: no spans\n');
});

test('the list shows id, age, root, services, duration, span count and errors', () => {
  const out = renderTraceList([{ traceId: 'cd'.repeat(16), rootService: 'web', rootName: 'GET /', startTime: 1000, durationMs: 12.5, spanCount: 4, services: ['api', 'web'], error: true }], 6000);
  const [head, row] = out.trimEnd().split('\n');
  assert.match(head!, /^TRACE +STARTED +ROOT +SERVICES +DURATION +SPANS +ERROR$/);
  assert.match(row!, /^(cd){16} +5s ago +web GET \/ +api,web +12\.5 ms +4 +ERROR$/);
  assert.match(renderTraceList([]), /No traces yet/);
});
