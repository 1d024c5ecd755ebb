// Tap events kept newest first by time although batches from several proxies interleave, bounded; failures are mesh
// errors, 5xx and gRPC statuses other than OK.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TapEvent } from './api.js';
import { insertNewestFirst, isFailure, type Tapped } from './tap-events.js';

const ev = (time: number, over: Partial<TapEvent> = {}): Tapped => ({
  time, proxy: 'p', direction: 'outbound', sourceService: 'a', destinationService: 'b', sourceIdentity: null, destinationIdentity: null, method: 'GET', authority: 'b',
  path: '/', status: 200, grpcStatus: null, latencyMs: 1, route: null, endpoint: null, retries: 0, error: null, traceId: null, seq: time, ...over,
});

test('newest first by time, whatever the arrival order; at most `keep`', () => {
  let list: Tapped[] = [];
  for (const t of [10, 30, 20, 40, 5]) list = insertNewestFirst(list, ev(t), 4);
  assert.deepEqual(list.map((e) => e.time), [40, 30, 20, 10]);
  const before = list;
  assert.equal(insertNewestFirst(list, ev(1), 4), before, 'older than all kept: dropped, nothing changes');
});

test('failures: mesh errors, 5xx, gRPC not OK', () => {
  assert.equal(isFailure(ev(1)), false);
  assert.equal(isFailure(ev(1, { status: 503, error: 'fault-injected' })), true);
  assert.equal(isFailure(ev(1, { status: 429, error: 'rate-limited' })), true);
  assert.equal(isFailure(ev(1, { status: 502 })), true);
  assert.equal(isFailure(ev(1, { grpcStatus: '0' })), false);
  assert.equal(isFailure(ev(1, { grpcStatus: '14' })), true);
  assert.equal(isFailure(ev(1, { grpcStatus: '5' })), true);
});
