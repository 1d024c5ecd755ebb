import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTraceparent, newSpanId, newTraceId, readTraceHeaders, writeTraceHeaders, type SpanContext } from './trace-context.js';

const TID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PID = '00f067aa0ba902b7';
const ctx = (over: Partial<SpanContext> = {}): SpanContext => ({ traceId: TID, spanId: 'a1b2c3d4e5f60718', parentSpanId: PID, sampled: true, traceState: null, ...over });
const field = (h: string[], name: string): string | false => { for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1] as string; return false; };

test('a W3C traceparent is read with its sampling flag and tracestate', () => {
  const t = readTraceHeaders(['accept', '*/*', 'traceparent', `00-${TID}-${PID}-01`, 'tracestate', 'congo=t61rcWkgMzE']);
  assert.equal(t.traceId, TID);
  assert.equal(t.parentId, PID);
  assert.equal(t.sampled, true);
  assert.equal(t.traceState, 'congo=t61rcWkgMzE');
  assert.equal(t.b3, 0);
  assert.equal(t.present, true);
  assert.equal(readTraceHeaders(['traceparent', `00-${TID}-${PID}-00`]).sampled, false);
});

test('an invalid traceparent is ignored: a new trace starts and its tracestate is not kept', () => {
  for (const bad of [`00-${'0'.repeat(32)}-${PID}-01`, `00-${TID}-${'0'.repeat(16)}-01`, `ff-${TID}-${PID}-01`, `00-${TID.toUpperCase()}-${PID}-01`, `00-${TID}-${PID}-01-extra`, 'garbage']) {
    const t = readTraceHeaders(['traceparent', bad, 'tracestate', 'a=b']);
    assert.equal(t.traceId, null, bad);
    assert.equal(t.traceState, null, bad);
  }
  // A later version may carry more fields after a dash.
  assert.equal(readTraceHeaders(['traceparent', `01-${TID}-${PID}-01-more`]).traceId, TID);
});

test('B3 single: ids, sampling state, 64-bit trace ids, and a bare sampling decision', () => {
  const t = readTraceHeaders(['b3', `${TID}-${PID}-1-0123456789abcdef`]);
  assert.deepEqual([t.traceId, t.parentId, t.sampled, t.b3], [TID, PID, true, 1]);
  const short = readTraceHeaders(['b3', `a3ce929d0e0e4736-${PID}-d`]);
  assert.equal(short.traceId, '0000000000000000a3ce929d0e0e4736');
  assert.equal(short.b3Short, true);
  assert.equal(short.sampled, true);
  const deferred = readTraceHeaders(['b3', `${TID}-${PID}`]);
  assert.equal(deferred.sampled, null);
  const deny = readTraceHeaders(['b3', '0']);
  assert.deepEqual([deny.traceId, deny.sampled, deny.b3], [null, false, 1]);
});

test('B3 multi: x-b3-* fields, with x-b3-flags meaning debug (sampled)', () => {
  const t = readTraceHeaders(['x-b3-traceid', TID, 'x-b3-spanid', PID, 'x-b3-parentspanid', '0123456789abcdef', 'x-b3-sampled', '0']);
  assert.deepEqual([t.traceId, t.parentId, t.sampled, t.b3], [TID, PID, false, 2]);
  assert.equal(readTraceHeaders(['x-b3-traceid', TID, 'x-b3-spanid', PID, 'x-b3-flags', '1']).sampled, true);
});

test('W3C wins over B3 when both came; B3 is rewritten to match', () => {
  const headers = ['traceparent', `00-${TID}-${PID}-01`, 'b3', `${'1'.repeat(32)}-${'2'.repeat(16)}-0`];
  const incoming = readTraceHeaders(headers);
  assert.equal(incoming.traceId, TID);
  const out = writeTraceHeaders(headers, incoming, ctx());
  assert.deepEqual(out, ['traceparent', `00-${TID}-a1b2c3d4e5f60718-01`, 'b3', `${TID}-a1b2c3d4e5f60718-1`]);
  // The next hop gets both; a 64-bit B3 id stays 64-bit there too.
  const shortId = '0000000000000000a3ce929d0e0e4736';
  const next = readTraceHeaders(['traceparent', `00-${shortId}-${PID}-01`, 'b3', `a3ce929d0e0e4736-${PID}-1`]);
  assert.equal(next.b3Short, true);
  assert.deepEqual(writeTraceHeaders(['b3', 'x'], next, ctx({ traceId: shortId })), ['traceparent', `00-${shortId}-a1b2c3d4e5f60718-01`, 'b3', 'a3ce929d0e0e4736-a1b2c3d4e5f60718-1']);
});

test('writing: traceparent always, old trace fields replaced, other fields and tracestate untouched', () => {
  const none = readTraceHeaders(['accept', '*/*']);
  const plain = ['accept', '*/*'];
  const out = writeTraceHeaders(plain, none, ctx({ sampled: false }));
  assert.equal(out, plain, 'appended in place when nothing is removed');
  assert.deepEqual(out, ['accept', '*/*', 'traceparent', `00-${TID}-a1b2c3d4e5f60718-00`]);

  const multi = ['x-b3-traceid', 'a3ce929d0e0e4736', 'x-b3-spanid', PID, 'x-b3-parentspanid', '0123456789abcdef', 'x-b3-sampled', '1', 'tracestate', 'k=v', 'accept', '*/*'];
  const inc = readTraceHeaders(multi);
  const rewritten = writeTraceHeaders(multi, inc, ctx({ traceId: '0000000000000000a3ce929d0e0e4736' }));
  assert.deepEqual(rewritten, ['tracestate', 'k=v', 'accept', '*/*', 'traceparent', '00-0000000000000000a3ce929d0e0e4736-a1b2c3d4e5f60718-01', 'x-b3-traceid', 'a3ce929d0e0e4736', 'x-b3-spanid', 'a1b2c3d4e5f60718', 'x-b3-sampled', '1']);
  assert.equal(field(rewritten, 'x-b3-parentspanid'), false);
});

test('new ids are lower-case hex of the right length, never all zero, and differ', () => {
  const ids = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const t = newTraceId();
    const s = newSpanId();
    assert.match(t, /^[0-9a-f]{32}$/);
    assert.match(s, /^[0-9a-f]{16}$/);
    ids.add(t);
    ids.add(s);
  }
  assert.equal(ids.size, 2000);
  assert.equal(formatTraceparent(ctx()), `00-${TID}-a1b2c3d4e5f60718-01`);
});
