import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpExchangeChannel, tunnelChannel } from '../core/diagnostics.js';
import { matchesTap, parseTapFilter, tapEventOf, TapHub, tapFilterQuery, tunnelEventOf, type TapEvent, type TapFacts } from './tap.js';

const facts = (over: Partial<TapFacts> = {}): TapFacts => ({
  direction: 'outbound',
  source: 'web',
  destination: 'reviews',
  peerIdentity: 'spiffe://mycel.local/ns/default/svc/reviews',
  method: 'GET',
  authority: 'reviews',
  path: '/reviews/1',
  headers: ['host', 'reviews', 'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
  route: 'default/reviews-canary',
  status: 200,
  grpcStatus: null,
  endpoint: '127.0.0.1:41234',
  errorCode: null,
  startTime: 100,
  endTime: 103.25,
  attempts: [{}, {}],
  ...over,
});

test('an event carries the request, both identities, the decision and the trace id, and no body', () => {
  const ev = tapEventOf(facts(), 'web-1a2b', 'spiffe://mycel.local/ns/default/svc/web');
  assert.equal(typeof ev.time, 'number');
  const { time: _t, ...rest } = ev;
  assert.deepEqual(rest, {
    proxy: 'web-1a2b', direction: 'outbound', sourceService: 'web', destinationService: 'reviews',
    sourceIdentity: 'spiffe://mycel.local/ns/default/svc/web', destinationIdentity: 'spiffe://mycel.local/ns/default/svc/reviews',
    method: 'GET', authority: 'reviews', path: '/reviews/1', status: 200, grpcStatus: null, latencyMs: 3.25,
    route: 'default/reviews-canary', endpoint: '127.0.0.1:41234', retries: 1, error: null, traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  });
  // Inbound, the peer is the caller and the proxy itself the destination.
  const inbound = tapEventOf(facts({ direction: 'inbound', peerIdentity: 'spiffe://x/ns/default/svc/web', headers: ['x-b3-traceid', '80f198ee56343ba8'] }), 'reviews-1', 'spiffe://x/ns/default/svc/reviews');
  assert.equal(inbound.sourceIdentity, 'spiffe://x/ns/default/svc/web');
  assert.equal(inbound.destinationIdentity, 'spiffe://x/ns/default/svc/reviews');
  assert.equal(inbound.traceId, '80f198ee56343ba8');
  assert.equal(tapEventOf(facts({ headers: [], attempts: null }), 'p', null).traceId, null);
});

test('filters: service on either side, path prefix, method, exact status or class, direction', () => {
  const f = (q: string) => {
    const r = parseTapFilter(new URLSearchParams(q));
    assert.ok(!(r instanceof Error), String(r));
    return r;
  };
  assert.ok(matchesTap(f('service=reviews'), facts()));
  assert.ok(matchesTap(f('service=web'), facts()));
  assert.ok(!matchesTap(f('service=ratings'), facts()));
  assert.ok(matchesTap(f('path=/reviews'), facts()));
  assert.ok(!matchesTap(f('path=/ratings'), facts()));
  assert.ok(matchesTap(f('method=get'), facts()));
  assert.ok(!matchesTap(f('method=POST'), facts()));
  assert.ok(matchesTap(f('status=2xx'), facts()));
  assert.ok(matchesTap(f('status=200'), facts()));
  assert.ok(!matchesTap(f('status=5xx'), facts()));
  assert.ok(matchesTap(f('status=5XX'), facts({ status: 503 })));
  assert.ok(!matchesTap(f('direction=inbound'), facts()));
  assert.ok(matchesTap(f('service=reviews&direction=outbound&status=200&method=GET&path=/r'), facts()));
  assert.deepEqual(f(tapFilterQuery(f('service=reviews&status=5xx&direction=inbound&path=/a&method=put')).toString()), { service: 'reviews', status: '5xx', direction: 'inbound', path: '/a', method: 'PUT' });
});

test('a bad filter names the parameter', () => {
  assert.match(String(parseTapFilter(new URLSearchParams('status=6xx'))), /status/);
  assert.match(String(parseTapFilter(new URLSearchParams('direction=up'))), /direction/);
  assert.match(String(parseTapFilter(new URLSearchParams('path=nope'))), /path/);
  assert.match(String(parseTapFilter(new URLSearchParams('service=Not_A_Name'))), /service/);
  assert.match(String(parseTapFilter(new URLSearchParams('method=G%20T'))), /method/);
});

test('the hub subscribes to the exchange channel only while a tap is open', () => {
  const hub = new TapHub('web-1', () => 'spiffe://mycel.local/ns/default/svc/web');
  assert.equal(httpExchangeChannel.hasSubscribers, false);
  const all: TapEvent[] = [];
  const errors: TapEvent[] = [];
  const stopAll = hub.tap({}, (e) => all.push(e));
  const stopErrors = hub.tap({ status: '5xx' }, (e) => errors.push(e));
  assert.equal(httpExchangeChannel.hasSubscribers, true);
  httpExchangeChannel.publish(facts());
  httpExchangeChannel.publish(facts({ status: 503, errorCode: 'no-endpoints' }));
  assert.equal(all.length, 2);
  assert.deepEqual(errors.map((e) => e.error), ['no-endpoints']);
  assert.equal(all[1], errors[0], 'one event object is shared by the taps that match');
  stopAll();
  stopAll();
  assert.equal(httpExchangeChannel.hasSubscribers, true);
  stopErrors();
  assert.equal(httpExchangeChannel.hasSubscribers, false);
  httpExchangeChannel.publish(facts());
  assert.equal(all.length, 2);
  hub.tap({}, () => {});
  hub.close();
  assert.equal(httpExchangeChannel.hasSubscribers, false);
  assert.equal(hub.open, 0);
});

test('a finished tunnel is an event too, and a failed one carries its reason and status', () => {
  const base = { phase: 'close' as const, direction: 'outbound', kind: 'connect', source: 'web', destination: 'db:5432', endpoint: null, result: null, startTime: 100 };
  const failed = tunnelEventOf({ ...base, error: { code: 'unknown-service', message: 'no service db' } }, 'web-1', 'spiffe://x/ns/default/svc/web', 103);
  assert.deepEqual([failed.method, failed.status, failed.error, failed.latencyMs, failed.path], ['CONNECT', 502, 'unknown-service', 3, '']);
  const tcp = tunnelEventOf({ ...base, kind: 'tcp', error: null, result: { aToB: 1, bToA: 2, reason: 'closed' } }, 'web-1', null, 200);
  assert.deepEqual([tcp.method, tcp.status, tcp.error], ['TCP', 0, null]);
  const hub = new TapHub('web-1', () => null);
  const seen: TapEvent[] = [];
  const stop = hub.tap({ status: '5xx' }, (e) => seen.push(e));
  assert.equal(tunnelChannel.hasSubscribers, true);
  tunnelChannel.publish({ ...base, phase: 'open', error: null });
  tunnelChannel.publish({ ...base, error: { code: 'no-endpoints', message: 'none' } });
  tunnelChannel.publish({ ...base, kind: 'tcp', error: null });
  assert.deepEqual(seen.map((e) => e.error), ['no-endpoints']);
  stop();
  assert.equal(tunnelChannel.hasSubscribers, false);
});
