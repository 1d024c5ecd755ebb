import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAccessLine, formatTunnelLine, type AccessLogFacts } from './access-log.js';

const facts = (over: Partial<AccessLogFacts> = {}): AccessLogFacts => ({
  direction: 'outbound',
  source: 'web',
  destination: 'api',
  peerIdentity: 'spiffe://mycel.local/ns/default/svc/api',
  method: 'GET',
  authority: 'api',
  path: '/hello?x=1',
  route: 'default/api-routes',
  status: 200,
  grpcStatus: null,
  responseBytes: 17,
  endpoint: '127.0.0.1:15006',
  errorCode: null,
  errorDetail: null,
  startTime: 1000,
  endTime: 1002.5,
  attempts: null,
  ...over,
});
const at = new Date('2026-11-26T00:00:00.000Z');

test('a JSON access line carries the request, its outcome and the mesh decision', () => {
  const line = formatAccessLine(facts({ errorCode: 'upstream-reset', errorDetail: 'reset', status: 502, attempts: [{}, {}, {}] }), 'json', at);
  assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'));
  assert.deepEqual(JSON.parse(line), {
    time: '2026-11-26T00:00:00.000Z', direction: 'outbound', source: 'web', destination: 'api', peer_identity: 'spiffe://mycel.local/ns/default/svc/api',
    method: 'GET', authority: 'api', path: '/hello?x=1', route: 'default/api-routes', status: 502, grpc_status: null, response_bytes: 17,
    duration_ms: 2.5, endpoint: '127.0.0.1:15006', retries: 2, error: 'upstream-reset', error_detail: 'reset',
  });
});

test('the text line is one line whatever the values hold: control characters and quotes come out escaped', () => {
  const line = formatAccessLine(facts({ authority: 'api\r\nX-Forged: 1', path: '/a"b\u0000' }), 'text', at);
  assert.equal(line, '2026-11-26T00:00:00.000Z outbound web -> api "GET api\\r\\nX-Forged: 1 /a\\"b\\u0000" 200 17B 2.5ms 127.0.0.1:15006 route=default/api-routes\n');
  const json = formatAccessLine(facts({ authority: 'api\r\nX-Forged: 1' }), 'json', at);
  assert.equal(json.split('\n').length, 2);
  assert.equal(JSON.parse(json).authority, 'api\r\nX-Forged: 1');
});

test('a tunnel line has the bytes each way, the duration and how it ended', () => {
  const base = { phase: 'close' as const, direction: 'outbound', kind: 'tcp', source: 'web', destination: 'db', endpoint: '127.0.0.1:15006', error: null, startTime: 10 };
  assert.deepEqual(JSON.parse(formatTunnelLine({ ...base, result: { aToB: 5, bToA: 7, reason: 'closed' } }, 'json', at, 1510)), {
    time: '2026-11-26T00:00:00.000Z', direction: 'outbound', kind: 'tcp', source: 'web', destination: 'db', endpoint: '127.0.0.1:15006',
    sent_bytes: 5, received_bytes: 7, duration_ms: 1500, error: null, error_detail: null,
  });
  const idle = JSON.parse(formatTunnelLine({ ...base, result: { aToB: 1, bToA: 0, reason: 'idle-timeout' } }, 'json', at, 20));
  assert.equal(idle.error, 'idle-timeout');
  const failed = formatTunnelLine({ ...base, error: { code: 'connect-failed', message: 'ECONNREFUSED' }, result: null }, 'text', at, 12.5);
  assert.equal(failed, '2026-11-26T00:00:00.000Z outbound web -> db tcp 127.0.0.1:15006 sent=0B received=0B 2.5ms error=connect-failed\n');
});
