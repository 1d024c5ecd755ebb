// The span exporter against real receivers on loopback: one that decodes OTLP (the control plane's decoder, checked
// against the official exporters), one that is down, and one that accepts connections but never answers.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../core/log.js';
import { closedPort } from '../../test/helpers/http.js';
import { startCollector, type TestCollector } from '../../test/helpers/otlp-receiver.js';
import { OtlpExporter } from './otlp-exporter.js';
import type { SpanRecord, SpanSource } from './otlp-spans.js';

const SOURCE: SpanSource = { service: 'web', namespace: 'default', identity: () => 'spiffe://mycel.local/ns/default/svc/web' };
const TID = '4bf92f3577b34da6a3ce929d0e0e4736';

function record(i: number, over: Partial<SpanRecord> = {}): SpanRecord {
  return {
    ctx: { traceId: TID, spanId: (i + 1).toString(16).padStart(16, '0'), parentSpanId: '00f067aa0ba902b7', sampled: true, traceState: 'k=v' },
    kind: 'client',
    startMs: 1764000000000.125 + i,
    endMs: 1764000000003.625 + i,
    method: 'GET',
    path: '/reviews/1?x=y',
    authority: 'reviews',
    status: 200,
    grpcStatus: null,
    errorCode: null,
    errorDetail: null,
    route: 'default/reviews-canary',
    source: 'web',
    destination: 'reviews',
    peerIdentity: 'spiffe://mycel.local/ns/default/svc/reviews',
    endpoint: '127.0.0.1:41234',
    retries: 1,
    ...over,
  };
}

function counting() {
  const c = { dropped: { 'queue-full': 0, 'export-failed': 0 }, exported: 0 };
  return { c, hooks: { onDropped: (n: number, reason: 'queue-full' | 'export-failed') => void (c.dropped[reason] += n), onExported: (n: number) => void (c.exported += n) } };
}

let collector: TestCollector;
before(async () => {
  collector = await startCollector();
});
after(async () => {
  await collector?.close();
});

test('spans reach an OTLP receiver as protobuf with the mesh attributes, parents and status', async () => {
  const { c, hooks } = counting();
  const ex = new OtlpExporter({ url: `${collector.url}/v1/traces`, source: SOURCE, intervalMs: 60_000, log: silentLogger, ...hooks });
  ex.push(record(0));
  ex.push(record(1, { kind: 'server', status: 503, errorCode: 'no-healthy-endpoint', errorDetail: 'all ejected', peerIdentity: 'spiffe://mycel.local/ns/default/svc/gateway' }));
  await ex.flush();
  assert.equal(c.exported, 2);
  assert.ok(collector.requests.includes('application/x-protobuf'));
  const spans = collector.traces.get(TID)!;
  assert.equal(spans.length, 2);
  const [client, server] = spans;
  assert.equal(client!.name, 'GET /reviews/1');
  assert.equal(client!.kind, 'client');
  assert.equal(client!.service, 'web');
  assert.equal(client!.parentSpanId, '00f067aa0ba902b7');
  assert.equal(client!.startTime, 1764000000000.125);
  assert.equal(client!.durationMs, 3.5);
  assert.equal(client!.status, 'ok');
  assert.deepEqual(client!.attributes, {
    'mycel.direction': 'outbound',
    'http.request.method': 'GET',
    'url.path': '/reviews/1?x=y',
    'server.address': 'reviews',
    'http.response.status_code': 200,
    'mycel.retries': 1,
    'mycel.source.service': 'web',
    'mycel.destination.service': 'reviews',
    'mycel.source.identity': 'spiffe://mycel.local/ns/default/svc/web',
    'mycel.destination.identity': 'spiffe://mycel.local/ns/default/svc/reviews',
    'mycel.route': 'default/reviews-canary',
    'mycel.upstream.endpoint': '127.0.0.1:41234',
  });
  assert.equal(server!.kind, 'server');
  assert.equal(server!.status, 'error');
  assert.equal(server!.attributes['mycel.direction'], 'inbound');
  assert.equal(server!.attributes['mycel.error'], 'no-healthy-endpoint');
  assert.equal(server!.attributes['mycel.source.identity'], 'spiffe://mycel.local/ns/default/svc/gateway');
  assert.equal(server!.attributes['mycel.destination.identity'], 'spiffe://mycel.local/ns/default/svc/web');
  await ex.close();
});

test('a receiver that is down: the batch is dropped and counted, nothing piles up', async () => {
  const { c, hooks } = counting();
  const ex = new OtlpExporter({ url: `http://127.0.0.1:${await closedPort()}/v1/traces`, source: SOURCE, intervalMs: 60_000, log: silentLogger, ...hooks });
  for (let i = 0; i < 5; i++) ex.push(record(i));
  await ex.flush();
  assert.equal(c.dropped['export-failed'], 5);
  assert.equal(c.exported, 0);
  assert.equal(ex.queued, 0);
  await ex.close();
});

test('a receiver that never answers: the queue stays at its bound and the excess is dropped and counted', async () => {
  const held: http.ServerResponse[] = [];
  const slow = http.createServer((_req, res) => void held.push(res));
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  const { c, hooks } = counting();
  const ex = new OtlpExporter({ url: `http://127.0.0.1:${(slow.address() as AddressInfo).port}/v1/traces`, source: SOURCE, maxQueue: 8, maxBatch: 4, intervalMs: 60_000, timeoutMs: 60_000, log: silentLogger, ...hooks });
  let maxSeen = 0;
  for (let i = 0; i < 100; i++) {
    ex.push(record(i));
    maxSeen = Math.max(maxSeen, ex.queued);
  }
  // The first full batch (4) went out and hangs; 8 wait; the other 88 were dropped.
  assert.equal(maxSeen, 8);
  assert.equal(c.dropped['queue-full'], 88);
  const flushed = ex.flush();
  await new Promise<void>((resolve) => {
    slow.close(() => resolve());
    slow.closeAllConnections();
  });
  await flushed;
  await ex.close();
  assert.equal(c.dropped['export-failed'], 12);
  assert.equal(c.exported, 0);
});
