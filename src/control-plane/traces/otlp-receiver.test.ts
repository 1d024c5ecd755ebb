// The control plane's OTLP receiver against the official OpenTelemetry JS exporters as clients: spans made by the
// SDK's BasicTracerProvider, sent by @opentelemetry/exporter-trace-otlp-http (JSON) and by the same exporter base
// with the transformer's protobuf serializer (what the sidecars send), must come out field for field.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer, TraceExporterMetricsHelper } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { gzipSync } from 'node:zlib';
import { startCollector, type TestCollector } from '../../../test/helpers/otlp-receiver.js';
import { receiveOtlpTraces } from './otlp-receiver.js';
import { TraceBuffer } from './trace-buffer.js';

let collector: TestCollector;
before(async () => {
  collector = await startCollector();
});
after(async () => {
  await collector?.close();
});

function protobufExporter(url: string): SpanExporter {
  const delegate = createOtlpHttpExportDelegate(convertLegacyHttpOptions({ url }, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }), ProtobufTraceSerializer, 'otlp_http_span_exporter', TraceExporterMetricsHelper, undefined);
  return new OTLPExporterBase<ReadableSpan[]>(delegate) as unknown as SpanExporter;
}

/** Makes a parent and a child span (with attributes, an error status, a remote parent) and exports them. */
async function sendSpans(exporter: SpanExporter, service: string): Promise<ReadableSpan[]> {
  const finished: ReadableSpan[] = [];
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [
      new SimpleSpanProcessor(exporter),
      { onStart() {}, onEnd: (s: ReadableSpan) => void finished.push(s), forceFlush: async () => {}, shutdown: async () => {} },
    ],
  });
  const tracer = provider.getTracer('receiver-test');
  const parent = tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'app.ratio': 0.25, 'app.cached': true } });
  const { trace, context } = await import('@opentelemetry/api');
  const child = tracer.startSpan('SELECT orders', { kind: SpanKind.CLIENT }, trace.setSpan(context.active(), parent));
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock' });
  child.end();
  parent.end();
  await provider.forceFlush();
  await provider.shutdown();
  return finished;
}

function checkReceived(sent: ReadableSpan[], service: string): void {
  for (const s of sent) {
    const ctx = s.spanContext();
    const got = collector.traces.get(ctx.traceId)?.find((r) => r.spanId === ctx.spanId);
    assert.ok(got, `span ${s.name} received`);
    assert.equal(got.service, service);
    assert.equal(got.name, s.name);
    assert.equal(got.parentSpanId, s.parentSpanContext?.spanId ?? null);
    assert.equal(got.kind, s.kind === SpanKind.SERVER ? 'server' : 'client');
    assert.equal(got.status, s.status.code === SpanStatusCode.ERROR ? 'error' : 'ok');
    const startMs = s.startTime[0] * 1000 + s.startTime[1] / 1e6;
    const durMs = s.duration[0] * 1000 + s.duration[1] / 1e6;
    assert.ok(Math.abs(got.startTime - startMs) < 0.002, `start ${got.startTime} vs ${startMs}`);
    assert.ok(Math.abs(got.durationMs - durMs) < 0.002, `duration ${got.durationMs} vs ${durMs}`);
    for (const [k, v] of Object.entries(s.attributes)) assert.equal(got.attributes[k], v, k);
  }
}

test('spans from the official OTLP/HTTP JSON exporter arrive field for field', async () => {
  const sent = await sendSpans(new OTLPTraceExporter({ url: `${collector.url}/v1/traces` }), 'shop-json');
  assert.equal(sent.length, 2);
  assert.ok(collector.requests.includes('application/json'));
  checkReceived(sent, 'shop-json');
});

test('spans from the official exporter with the protobuf serializer arrive field for field', async () => {
  const sent = await sendSpans(protobufExporter(`${collector.url}/v1/traces`), 'shop-proto');
  assert.equal(sent.length, 2);
  assert.ok(collector.requests.includes('application/x-protobuf'));
  checkReceived(sent, 'shop-proto');
  const list = collector.traces.list(10, 'shop-proto');
  assert.equal(list.length, 1);
  assert.equal(list[0]!.rootName, 'GET /checkout');
  assert.equal(list[0]!.spanCount, 2);
  assert.equal(list[0]!.error, true);
});

test('gzip bodies are accepted; garbage and unknown types are refused with 400 and 415', async () => {
  const buf = new TraceBuffer();
  const body = Buffer.from(JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'z' } }] }, scopeSpans: [{ spans: [{ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), name: 'x', kind: 2, startTimeUnixNano: '1764000000000000000', endTimeUnixNano: '1764000000001500000' }] }] }] }));
  const ok = await receiveOtlpTraces('application/json', 'gzip', gzipSync(body), buf);
  assert.equal(ok.status, 200);
  assert.deepEqual(buf.get('ab'.repeat(16))?.map((s) => [s.service, s.kind, s.startTime, s.durationMs]), [['z', 'server', 1764000000000, 1.5]]);
  assert.equal((await receiveOtlpTraces('application/x-protobuf', undefined, Buffer.from([0x0a, 0xff, 0xff, 0x01]), buf)).status, 400);
  assert.equal((await receiveOtlpTraces('application/json', undefined, Buffer.from('{'), buf)).status, 400);
  assert.equal((await receiveOtlpTraces('text/plain', undefined, body, buf)).status, 415);
});
