import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StatsSeries } from '../../api/v1alpha1/stream-messages.js';
import { LATENCY_BUCKET_COUNT, LATENCY_BOUNDS_MS } from '../../telemetry/latency-buckets.js';
import { SignalWindow, SLOT_MS } from './signal-window.js';
import { mergedReport, parseWindow, statsReport, windowSlots } from './stats-report.js';

/** `requests` observations of `ms` each (at a bucket bound), `failures` of them failed. */
function series(kind: StatsSeries['kind'], service: string, requests: number, failures: number, boundMs: number, extra: Partial<StatsSeries> = {}): StatsSeries {
  const latency = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  latency[LATENCY_BOUNDS_MS.indexOf(boundMs)] = requests;
  return { kind, service, requests, success: requests - failures, latency, sumMs: requests * boundMs, ...extra };
}

test('summaries from several proxies merge by bucket into one series per service, route and edge', () => {
  let now = 1_000 * SLOT_MS + 1;
  const w = new SignalWindow({ now: () => now });
  // Two instances of api served 100 requests each; web called api 200 times (10 ms) through one route.
  w.record('api', 'default', { series: [series('service', 'api', 100, 10, 1)], dropped: 0 });
  w.record('api', 'default', { series: [series('service', 'api', 100, 30, 10)], dropped: 0 });
  w.record('web', 'default', { series: [series('edge', 'api', 200, 40, 10, { source: 'web' }), series('route', 'api', 200, 40, 10, { route: 'default/api-split' })], dropped: 2 });
  now += 5_000;
  const r = statsReport(w, 60, [{ service: 'web', namespace: 'default' }]);
  assert.equal(w.size, 3);
  assert.equal(w.droppedByProxies, 2);
  const api = r.services.find((s) => s.service === 'api')!;
  assert.deepEqual([api.requests, api.successRate, api.rps], [200, 0.8, 3.333]);
  // Half the requests at <= 1 ms, half in (5, 10]: p50 at the edge of the first half, p99 near 10 ms.
  assert.equal(api.p50Ms, 1);
  assert.equal(api.p99Ms, 9.9);
  const web = r.services.find((s) => s.service === 'web')!;
  assert.deepEqual([web.requests, web.rps, web.successRate, web.p99Ms], [0, 0, null, null], 'a known service without traffic');
  assert.deepEqual(r.edges.map((e) => [e.source, e.destination, e.requests, e.successRate]), [['web', 'api', 200, 0.8]]);
  assert.deepEqual(r.routes.map((e) => [e.service, e.route, e.requests]), [['api', 'default/api-split', 200]]);
  const points = r.timeline.find((t) => t.service === 'api')!.points;
  assert.equal(points.length, 6);
  assert.deepEqual(points.at(-1), { t: 1_000 * SLOT_MS, rps: 20, successRate: 0.8, p99Ms: 9.9 });
  assert.deepEqual(points[0], { t: 995 * SLOT_MS, rps: 0, successRate: null, p99Ms: null });
});

test('the window sums only its slots, and series with nothing in 10 minutes are forgotten', () => {
  let now = 500 * SLOT_MS;
  const w = new SignalWindow({ now: () => now });
  w.record('api', 'default', { series: [series('service', 'api', 50, 0, 1)], dropped: 0 });
  now += 3 * SLOT_MS;
  w.record('api', 'default', { series: [series('service', 'api', 10, 0, 1)], dropped: 0 });
  assert.equal(statsReport(w, 10, []).services[0]!.requests, 10);
  assert.equal(statsReport(w, 40, []).services[0]!.requests, 60);
  now += 10 * 60_000;
  w.record('web', 'default', { series: [series('service', 'web', 1, 0, 1)], dropped: 0 });
  assert.equal(w.size, 1, 'api aged out of the ring');
  assert.deepEqual(statsReport(w, 600, []).services.map((s) => s.service), ['web']);
});

test('a full window refuses new series but keeps adding to the ones it has', () => {
  const w = new SignalWindow({ maxSeries: 10, now: () => 7 * SLOT_MS });
  for (let i = 0; i < 25; i++) w.record(`s${i}`, 'default', { series: [series('service', `s${i}`, 3, 0, 1)], dropped: 0 });
  w.record('s0', 'default', { series: [series('service', 's0', 3, 0, 1)], dropped: 0 });
  assert.equal(w.size, 10);
  assert.equal(w.droppedSeries, 45);
  assert.equal(statsReport(w, 60, []).services.find((s) => s.service === 's0')!.requests, 6);
});

test('a proxy speaks for its own served service only', () => {
  const w = new SignalWindow({ now: () => 7 * SLOT_MS });
  w.record('web', 'shop', { series: [series('service', 'payments', 3, 0, 1)], dropped: 0 });
  assert.deepEqual(statsReport(w, 60, []).services.map((s) => [s.namespace, s.service]), [['shop', 'web']]);
});

test('the window parameter is whole seconds up to 10 minutes', () => {
  assert.equal(parseWindow(null), 60);
  assert.equal(parseWindow('30'), 30);
  assert.equal(parseWindow('600s'), 600);
  for (const bad of ['0', '601', '1.5', '1m', 'x']) assert.ok(parseWindow(bad) instanceof Error, bad);
});

test('replicas merge by bucket: each exports its raw slots, the asked one adds them to its own', () => {
  let now = 2_000 * SLOT_MS + 3;
  const a = new SignalWindow({ now: () => now });
  const b = new SignalWindow({ now: () => now });
  // api's two instances report to different replicas; web (on b) reports its edge to api.
  a.record('api', 'default', { series: [series('service', 'api', 90, 0, 1)], dropped: 0 });
  b.record('api', 'default', { series: [series('service', 'api', 10, 10, 1000)], dropped: 0 });
  b.record('web', 'default', { series: [series('edge', 'api', 100, 10, 2.5, { source: 'web' })], dropped: 0 });
  now += SLOT_MS;
  b.record('api', 'default', { series: [series('service', 'api', 5, 0, 1)], dropped: 0 });
  const { first, last } = windowSlots(now, 60);
  // Through JSON, as over HTTP; a slot outside the window and a malformed one are ignored.
  const raw = JSON.parse(JSON.stringify(b.exportRaw(first, last)));
  raw.series[0].slots.push([first - 100, new Array(21).fill(1)], [last, [1, 2]]);
  const r = mergedReport(a, [raw], 60, [{ service: 'web', namespace: 'default' }]);
  const api = r.services.find((s) => s.service === 'api')!;
  assert.deepEqual([api.requests, api.successRate], [105, 0.9048]);
  // p99 from the merged buckets: the 10 slow requests of b are the top 9.5%.
  assert.ok((api.p99Ms as number) > 500 && (api.p99Ms as number) <= 1000, String(api.p99Ms));
  assert.deepEqual(r.edges.map((e) => [e.source, e.destination, e.requests]), [['web', 'api', 100]]);
  assert.equal(r.timeline.find((t) => t.service === 'api')!.points.at(-1)!.rps, 0.5);
  assert.equal(statsReport(a, 60, []).services[0]!.requests, 90, 'the local window is left as it was');
});
