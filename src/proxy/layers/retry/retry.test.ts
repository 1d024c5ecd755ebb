import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../../../test/helpers/seeded-random.js';
import { attemptFailureOf, parseRetryAfter, RetryPolicy } from './index.js';

test('connect failures and refused streams are retried for any method; other failures only for idempotent ones', () => {
  const p = new RetryPolicy();
  assert.equal(p.afterFailure(0, 'POST', true, 'connect-failure'), 'retry');
  assert.equal(p.afterFailure(0, 'PATCH', true, 'refused-stream'), 'retry');
  assert.equal(p.afterFailure(0, 'GET', true, 'reset'), 'not-retriable', 'reset is not in the default retryOn');
  assert.equal(p.afterFailure(0, 'GET', true, 'timeout'), 'not-retriable');

  const resets = new RetryPolicy({ retryOn: ['reset'] });
  assert.equal(resets.afterFailure(0, 'GET', true, 'reset'), 'retry');
  assert.equal(resets.afterFailure(0, 'PUT', true, 'reset'), 'retry');
  assert.equal(resets.afterFailure(0, 'POST', true, 'reset'), 'method-not-idempotent');
  assert.equal(resets.afterFailure(0, 'GET', true, 'connect-failure'), 'not-retriable');
  assert.equal(new RetryPolicy({ retryOn: ['reset'], allowNonIdempotent: true }).afterFailure(0, 'POST', true, 'reset'), 'retry');

  for (const cls of ['5xx', 'gateway-error'] as const) {
    const p5 = new RetryPolicy({ retryOn: [cls] });
    for (const f of ['connect-failure', 'refused-stream', 'reset', 'timeout'] as const) assert.equal(p5.afterFailure(0, 'GET', true, f), 'retry', `${cls} covers ${f}`);
  }
});

test('attempts, replayability and the order of the verdicts', () => {
  const p = new RetryPolicy({ attempts: 2, retryOn: ['connect-failure', '5xx'] });
  assert.equal(p.afterFailure(1, 'GET', true, 'connect-failure'), 'retry');
  assert.equal(p.afterFailure(2, 'GET', true, 'connect-failure'), 'attempts-exhausted');
  assert.equal(p.afterFailure(0, 'GET', false, 'connect-failure'), 'body-not-replayable');
  assert.equal(p.afterResponse(2, 'GET', true, 503, [], null), 'attempts-exhausted');
  assert.equal(p.afterResponse(2, 'GET', true, 200, [], null), 'not-retriable', 'a success is never "exhausted"');
  assert.equal(p.afterResponse(0, 'GET', false, 500, [], null), 'body-not-replayable');
  assert.equal(new RetryPolicy({ attempts: 0 }).afterFailure(0, 'GET', true, 'connect-failure'), 'attempts-exhausted');
});

test('HTTP status classes: 5xx, gateway-error and retriable-status-codes', () => {
  const any = new RetryPolicy({ retryOn: ['5xx'] });
  assert.equal(any.afterResponse(0, 'GET', true, 500, [], null), 'retry');
  assert.equal(any.afterResponse(0, 'GET', true, 599, [], null), 'retry');
  assert.equal(any.afterResponse(0, 'GET', true, 404, [], null), 'not-retriable');
  assert.equal(any.afterResponse(0, 'POST', true, 503, [], null), 'method-not-idempotent');
  const gw = new RetryPolicy({ retryOn: ['gateway-error'] });
  assert.deepEqual([500, 502, 503, 504, 501].map((s) => gw.afterResponse(0, 'GET', true, s, [], null)), ['not-retriable', 'retry', 'retry', 'retry', 'not-retriable']);
  const codes = new RetryPolicy({ retryOn: ['retriable-status-codes'], retriableStatusCodes: [409, 429] });
  assert.deepEqual([409, 429, 503].map((s) => codes.afterResponse(0, 'DELETE', true, s, [], null)), ['retry', 'retry', 'not-retriable']);
  assert.equal(new RetryPolicy({ retriableStatusCodes: [429] }).afterResponse(0, 'GET', true, 429, [], null), 'not-retriable', 'codes alone do nothing without the class');
});

test('gRPC statuses are read from the trailers, or from the headers of a trailers-only answer; they opt in POST', () => {
  const p = new RetryPolicy({ retryOn: ['unavailable', 'resource-exhausted'] });
  const grpcHead = ['content-type', 'application/grpc'];
  assert.equal(p.afterResponse(0, 'POST', true, 200, [...grpcHead, 'grpc-status', '14'], null), 'retry', 'trailers-only UNAVAILABLE');
  assert.equal(p.afterResponse(0, 'POST', true, 200, grpcHead, ['grpc-status', '8', 'grpc-message', 'slow down']), 'retry');
  assert.equal(p.afterResponse(0, 'POST', true, 200, grpcHead, ['grpc-status', '13']), 'not-retriable', 'INTERNAL is not listed');
  assert.equal(p.afterResponse(0, 'POST', true, 200, [...grpcHead, 'grpc-status', '14'], ['grpc-status', '0']), 'not-retriable', 'the trailers decide');
  assert.equal(p.afterResponse(0, 'POST', true, 200, grpcHead, ['grpc-status', '0']), 'not-retriable');
  assert.equal(p.retriesGrpcStatus, true);
  assert.equal(new RetryPolicy({ retryOn: ['5xx', 'reset', 'retriable-status-codes'] }).retriesGrpcStatus, false, 'no gRPC class: a gRPC answer need not be held for its trailers');
  const all = new RetryPolicy({ retryOn: ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'] });
  assert.deepEqual(['1', '4', '8', '13', '14', '2', '5'].map((s) => all.afterResponse(0, 'POST', true, 200, grpcHead, ['grpc-status', s])), ['retry', 'retry', 'retry', 'retry', 'retry', 'not-retriable', 'not-retriable']);
});

test('backoff is full jitter: random below min(max, base x 2^n), spread over the whole range', () => {
  const top = new RetryPolicy({ backoffBaseMs: 25, backoffMaxMs: 250 }, () => 0.999999);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 40].map((n) => top.backoffMs(n)), [24, 49, 99, 199, 249, 249, 249]);
  assert.equal(new RetryPolicy({}, () => 0).backoffMs(3), 0);
  const p = new RetryPolicy({ backoffBaseMs: 100, backoffMaxMs: 1000 }, seededRandom(12));
  let sum = 0;
  for (let i = 0; i < 10_000; i++) {
    const ms = p.backoffMs(2);
    assert.ok(ms >= 0 && ms < 400);
    sum += ms;
  }
  assert.ok(Math.abs(sum / 10_000 - 200) < 10, `mean ${sum / 10_000}`);
});

test('Retry-After sets the wait (seconds or a date); asking for more than the cap ends the retries', () => {
  const epoch = Date.parse('2025-03-01T12:00:00Z');
  const p = new RetryPolicy({ retryOn: ['5xx', 'retriable-status-codes'], retriableStatusCodes: [429], maxRetryAfterMs: 10_000 }, () => 0.5, () => epoch);
  assert.equal(p.backoffMs(0, ['retry-after', '3']), 3000);
  assert.equal(p.backoffMs(0, ['retry-after', 'Sat, 01 Mar 2025 12:00:05 GMT']), 5000);
  assert.equal(p.backoffMs(0, ['retry-after', 'soon']), 12, 'unreadable: the jittered backoff');
  assert.equal(p.afterResponse(0, 'GET', true, 429, ['retry-after', '2'], null), 'retry');
  assert.equal(p.afterResponse(0, 'GET', true, 503, ['retry-after', '120'], null), 'retry-after-too-long');
  assert.equal(p.afterResponse(0, 'GET', true, 503, ['retry-after', 'Sat, 01 Mar 2025 13:00:00 GMT'], null), 'retry-after-too-long');
});

test('parseRetryAfter reads delay-seconds and HTTP dates, and refuses the rest', () => {
  const epoch = Date.parse('2025-03-01T12:00:00Z');
  assert.equal(parseRetryAfter('0', epoch), 0);
  assert.equal(parseRetryAfter(' 7 ', epoch), 7000);
  assert.equal(parseRetryAfter('Sat, 01 Mar 2025 12:01:00 GMT', epoch), 60_000);
  assert.equal(parseRetryAfter('Saturday, 01-Mar-25 12:00:30 GMT', epoch) >= 0, true, 'RFC 850 dates are read when the runtime can');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', epoch), 0, 'a date in the past: no wait');
  for (const bad of ['', 'soon', '-5', '1.5', '12345678901', '2025-03-01']) assert.equal(parseRetryAfter(bad, epoch), -1, bad);
});

test('transport error codes map to failure classes', () => {
  assert.equal(attemptFailureOf('connect-failed'), 'connect-failure');
  assert.equal(attemptFailureOf('tls-handshake-failed'), 'connect-failure');
  assert.equal(attemptFailureOf('upstream-reset'), 'reset');
  assert.equal(attemptFailureOf('response-timeout'), 'timeout');
  assert.equal(attemptFailureOf('bad-request'), null);
});
