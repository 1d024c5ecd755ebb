import { test } from 'node:test';
import assert from 'node:assert/strict';
import { beginSpan, type TracedRequest } from './index.js';

const TID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PID = '00f067aa0ba902b7';
const req = (headers: string[] = []): TracedRequest => ({ headers: ['accept', '*/*', ...headers], trace: null });
const traceparentOf = (r: TracedRequest) => r.headers[r.headers.indexOf('traceparent') + 1];

test('no context: a new root span, sampled at the configured percentage, propagated either way', () => {
  const on = req();
  beginSpan(on, 100);
  assert.equal(on.trace?.parentSpanId, null);
  assert.equal(on.trace?.sampled, true);
  assert.equal(traceparentOf(on), `00-${on.trace?.traceId}-${on.trace?.spanId}-01`);
  const off = req();
  beginSpan(off, 0);
  assert.equal(off.trace?.sampled, false);
  assert.equal(traceparentOf(off), `00-${off.trace?.traceId}-${off.trace?.spanId}-00`);
  let sampled = 0;
  for (let i = 0; i < 10_000; i++) {
    const r = req();
    beginSpan(r, 25);
    if (r.trace?.sampled) sampled++;
  }
  assert.ok(sampled > 2000 && sampled < 3000, `${sampled} of 10000 sampled at 25%`);
});

test("the caller's decision wins: sampled is traced at sampling 0, unsampled stays unsampled at 100", () => {
  const yes = req(['traceparent', `00-${TID}-${PID}-01`]);
  beginSpan(yes, 0);
  assert.deepEqual([yes.trace?.traceId, yes.trace?.parentSpanId, yes.trace?.sampled], [TID, PID, true]);
  assert.notEqual(yes.trace?.spanId, PID);
  const no = req(['traceparent', `00-${TID}-${PID}-00`]);
  beginSpan(no, 100);
  assert.equal(no.trace?.sampled, false);
  assert.equal(traceparentOf(no), `00-${TID}-${no.trace?.spanId}-00`);
  // B3 without a sampling state defers the decision to this hop; the trace is continued either way.
  const deferred = req(['b3', `${TID}-${PID}`]);
  beginSpan(deferred, 100);
  assert.deepEqual([deferred.trace?.traceId, deferred.trace?.sampled], [TID, true]);
  assert.equal(deferred.headers[deferred.headers.indexOf('b3') + 1], `${TID}-${deferred.trace?.spanId}-1`);
});
