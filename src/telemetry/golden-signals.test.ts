import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeParse } from 'valibot';
import { ProxyMessage } from '../api/v1alpha1/stream-messages.js';
import { GoldenSignalsRecorder, isSuccess } from './golden-signals.js';
import { latencyBucket } from './latency-buckets.js';
import type { ExchangeFacts } from './proxy-metrics.js';

function facts(o: Partial<ExchangeFacts>): ExchangeFacts {
  return { direction: 'outbound', source: 'web', destination: 'api', route: null, method: 'GET', status: 200, grpcStatus: null, errorCode: null, grpc: false, requestBytes: 0, responseBytes: 0, startTime: 1000, endTime: 1002, ...o };
}

test('success: status below 500 with no mesh error; gRPC by grpc-status, or HTTP 200 without one', () => {
  assert.equal(isSuccess(facts({ status: 404 })), true);
  assert.equal(isSuccess(facts({ status: 500 })), false);
  assert.equal(isSuccess(facts({ status: 429, errorCode: 'rate-limited' })), false);
  assert.equal(isSuccess(facts({ status: 0, errorCode: 'downstream-reset' })), false);
  assert.equal(isSuccess(facts({ grpc: true, grpcStatus: '0' })), true);
  assert.equal(isSuccess(facts({ grpc: true, grpcStatus: '14' })), false);
  assert.equal(isSuccess(facts({ grpc: true, grpcStatus: null })), true);
  assert.equal(isSuccess(facts({ grpc: true, grpcStatus: null, status: 404 })), false);
});

test('a summary has the served service, each edge and each route, and take() starts a new interval', () => {
  let now = 50_000;
  const r = new GoldenSignalsRecorder(500, () => now);
  for (let i = 0; i < 8; i++) r.record(facts({ route: 'default/api-split', endTime: 1000 + i }));
  r.record(facts({ status: 503, route: 'default/api-split', endTime: 1000.05 }));
  r.record(facts({ direction: 'inbound', source: 'web', destination: 'web', endTime: 1000.3 }));
  r.record(facts({ direction: 'inbound', source: null, destination: 'web', status: 500 }));
  now += 10_000;
  const s = r.take();
  assert.equal(s.intervalMs, 10_000);
  const byKind = (k: string) => s.series.filter((x) => x.kind === k);
  assert.deepEqual(byKind('service').map((x) => [x.service, x.requests, x.success]), [['web', 2, 1]]);
  assert.deepEqual(byKind('edge').map((x) => [x.source, x.service, x.requests, x.success]), [['web', 'api', 9, 8], ['unknown', 'web', 1, 0]]);
  assert.deepEqual(byKind('route').map((x) => [x.route, x.service, x.requests]), [['default/api-split', 'api', 9]]);
  const edge = byKind('edge')[0]!;
  assert.equal(edge.latency[latencyBucket(7)], 2, '6 and 7 ms fall in (5, 10]');
  assert.equal(edge.latency.reduce((a, b) => a + b, 0), 9);
  // What the control plane validates accepts it.
  assert.equal(safeParse(ProxyMessage, JSON.parse(JSON.stringify({ type: 'stats', ...s }))).success, true);
  assert.deepEqual(r.take().series, []);
});

test('the series of one summary are capped; what does not fit is counted as dropped', () => {
  const r = new GoldenSignalsRecorder(3);
  for (let i = 0; i < 10; i++) r.record(facts({ destination: `svc-${i}` }));
  r.record(facts({ destination: 'svc-0' }));
  const s = r.take();
  assert.equal(s.series.length, 3);
  assert.equal(s.dropped, 7);
  assert.equal(s.series[0]!.requests, 2);
});

test('the control plane refuses summaries that are too large or do not add up', () => {
  const series = { kind: 'edge', service: 'api', source: 'web', requests: 1, success: 1, latency: new Array(18).fill(0), sumMs: 1 };
  series.latency[3] = 1;
  const ok = { type: 'stats', intervalMs: 10_000, series: [series] };
  assert.equal(safeParse(ProxyMessage, ok).success, true);
  assert.equal(safeParse(ProxyMessage, { ...ok, series: new Array(501).fill(series) }).success, false);
  assert.equal(safeParse(ProxyMessage, { ...ok, series: [{ ...series, success: 2 }] }).success, false);
  assert.equal(safeParse(ProxyMessage, { ...ok, series: [{ ...series, requests: 2 }] }).success, false);
  assert.equal(safeParse(ProxyMessage, { ...ok, series: [{ ...series, latency: [1] }] }).success, false);
  assert.equal(safeParse(ProxyMessage, { ...ok, series: [{ ...series, kind: 'route' }] }).success, false);
});
