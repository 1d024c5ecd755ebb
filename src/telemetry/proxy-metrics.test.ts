import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyMetrics, type ExchangeFacts } from './proxy-metrics.js';

function facts(o: Partial<ExchangeFacts>): ExchangeFacts {
  return { direction: 'outbound', source: 'web', destination: 'api', route: 'default/api', method: 'GET', status: 200, grpcStatus: null, errorCode: null, grpc: false, requestBytes: 0, responseBytes: 10, startTime: 0, endTime: 1.5, ...o };
}

const seriesCount = (text: string) => text.split('\n').filter((l) => l.length > 0 && !l.startsWith('#')).length;

test('label values come from fixed sets: 1000 distinct paths, odd methods and header values add no series', () => {
  const m = new ProxyMetrics();
  m.recordExchange(facts({}));
  const before = seriesCount(m.render());
  for (let i = 0; i < 1000; i++) {
    // The exchange facts carry no path or header at all; an unknown method folds into OTHER.
    m.recordExchange(facts({ method: i % 2 ? 'GET' : `X-CUSTOM-${i}`, ...({ path: `/items/${i}?q=${i}`, authority: `h${i}` } as object) }));
  }
  const text = m.render();
  assert.equal(seriesCount(text), before + 1, 'only the method="OTHER" series is new');
  assert.match(text, /^mycel_requests_total\{[^}]*method="OTHER"[^}]*\} 500$/m);
  assert.doesNotMatch(text, /items|X-CUSTOM/);
});

test('request and response bytes, and gRPC status from the trailers, are counted per direction and edge', () => {
  const m = new ProxyMetrics();
  m.recordExchange(facts({ requestBytes: 300, responseBytes: 20 }));
  m.recordExchange(facts({ direction: 'inbound', source: 'web', destination: 'api', route: null, grpc: true, grpcStatus: '14', method: 'POST', requestBytes: 7 }));
  const text = m.render();
  assert.match(text, /^mycel_request_bytes_total\{direction="outbound",source_service="web",destination_service="api"\} 300$/m);
  assert.match(text, /^mycel_request_bytes_total\{direction="inbound",source_service="web",destination_service="api"\} 7$/m);
  assert.match(text, /^mycel_response_bytes_total\{direction="outbound",source_service="web",destination_service="api"\} 20$/m);
  assert.match(text, /^mycel_requests_total\{direction="inbound",source_service="web",destination_service="api",route="",method="POST",status_code="200",grpc_status="14",retried="false"\} 1$/m);
  assert.match(text, /^mycel_request_duration_seconds_bucket\{direction="outbound",source_service="web",destination_service="api",route="default\/api",le="0\.0025"\} 1$/m);
  assert.match(text, /^# TYPE mycel_authz_denied_total counter$/m);
});
