// The tracer on the real diagnostics channel: it subscribes only while it has somewhere to export, records only
// sampled exchanges, and sends them to every configured receiver.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { httpExchangeChannel } from '../core/diagnostics.js';
import { silentLogger } from '../core/log.js';
import { startCollector, type TestCollector } from '../../test/helpers/otlp-receiver.js';
import { Tracer, tracesUrl, type TraceFacts } from './tracer.js';

let a: TestCollector;
let b: TestCollector;
before(async () => {
  [a, b] = await Promise.all([startCollector(), startCollector()]);
});
after(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

function exchange(traceId: string, sampled: boolean, over: Partial<TraceFacts> = {}): TraceFacts {
  const now = performance.now();
  return {
    trace: { traceId, spanId: 'a1b2c3d4e5f60718', parentSpanId: null, sampled, traceState: null },
    direction: 'outbound',
    startTime: now - 5,
    endTime: now,
    method: 'POST',
    path: '/orders',
    authority: 'orders',
    status: 502,
    grpcStatus: null,
    errorCode: 'upstream-reset',
    errorDetail: 'the upstream reset the stream',
    route: null,
    source: 'web',
    destination: 'orders',
    peerIdentity: null,
    endpoint: '127.0.0.1:9',
    attempts: [{}, {}, {}],
    ...over,
  };
}

test('tracesUrl puts /v1/traces under a base URL once', () => {
  assert.equal(tracesUrl('http://c:4318'), 'http://c:4318/v1/traces');
  assert.equal(tracesUrl('http://c:4318/'), 'http://c:4318/v1/traces');
  assert.equal(tracesUrl('http://c:4318/v1/traces'), 'http://c:4318/v1/traces');
});

test('sampled exchanges go to every receiver; unsampled ones and exchanges while off go nowhere', async () => {
  const exported: Record<string, number> = {};
  const tracer = new Tracer({
    source: { service: 'web', namespace: 'default', identity: () => 'spiffe://mycel.local/ns/default/svc/web' },
    onDropped: () => assert.fail('nothing should drop'),
    onExported: (target, n) => void (exported[target] = (exported[target] ?? 0) + n),
    log: silentLogger,
    exporter: { intervalMs: 20 },
  });
  const before = httpExchangeChannel.hasSubscribers;
  tracer.configure(100, []);
  assert.equal(tracer.tracing, false);
  assert.equal(httpExchangeChannel.hasSubscribers, before);
  httpExchangeChannel.publish(exchange('11'.repeat(16), true));

  tracer.configure(50, [{ name: 'control-plane', url: tracesUrl(a.url) }, { name: 'otlp', url: tracesUrl(b.url) }]);
  assert.equal(tracer.tracing, true);
  assert.equal(tracer.samplingPercent, 50);
  httpExchangeChannel.publish(exchange('22'.repeat(16), false));
  httpExchangeChannel.publish(exchange('33'.repeat(16), true));
  await tracer.close();
  assert.equal(tracer.tracing, false);
  assert.deepEqual(exported, { 'control-plane': 1, otlp: 1 });
  for (const c of [a, b]) {
    assert.equal(c.traces.get('11'.repeat(16)), undefined);
    assert.equal(c.traces.get('22'.repeat(16)), undefined);
    const [span] = c.traces.get('33'.repeat(16))!;
    assert.equal(span!.status, 'error');
    assert.equal(span!.attributes['mycel.retries'], 2);
    assert.equal(span!.attributes['mycel.error'], 'upstream-reset');
    assert.ok(Math.abs(span!.durationMs - 5) < 0.01);
    assert.ok(Math.abs(span!.startTime - (Date.now() - 5)) < 5000, 'start time on the wall clock');
  }
});
