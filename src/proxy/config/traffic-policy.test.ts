import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { TrafficPolicySpec } from '../../api/v1alpha1/policies.js';
import { compileTrafficPolicy } from './traffic-policy.js';

const compile = (spec: unknown) => compileTrafficPolicy('p', v.parse(TrafficPolicySpec, spec));
const target = { targetRef: { kind: 'Service', name: 'api' } };

test('an empty TrafficPolicy: EWMA, no retries, no timeout, no limits beyond the defaults', () => {
  const c = compile(target);
  assert.deepEqual(c.balancer, { policy: 'EWMA' });
  assert.equal(c.retry, null);
  assert.equal(c.timeoutMs, null);
  assert.equal(c.outlier, null);
  assert.equal(c.healthCheck, null);
  assert.equal(c.rateLimit, null);
  assert.deepEqual(c.limits, {});
  assert.deepEqual(c.locality, { preferLocalZone: true, failoverThresholdPercent: 70 });
});

test('durations become milliseconds and every section maps to its layer', () => {
  const c = compile({
    ...target,
    loadBalancer: { type: 'RingHash', hashKey: { header: 'X-User' }, minimumRingSize: 2048 },
    connectionPool: { maxRequests: 10, maxRetries: 2 },
    outlierDetection: { consecutive5xx: 3, baseEjectionTime: '5s', panicThreshold: 30 },
    healthCheck: { http: { path: '/healthz' }, interval: '2s', timeout: '500ms' },
    retry: { attempts: 3, perTryTimeout: '200ms', retryOn: ['5xx', 'reset'], budget: { ratio: 0.1, minRetriesPerSecond: 5, ttl: '5s' }, backoff: { baseInterval: '10ms', maxInterval: '100ms' } },
    timeout: '2s',
    rateLimit: { requestsPerUnit: 120, unit: 'minute', perSourceIdentity: true },
  });
  assert.deepEqual(c.balancer, { policy: 'RingHash', minimumRingSize: 2048 });
  assert.deepEqual(c.hashKey, { header: 'x-user' });
  assert.deepEqual(c.limits, { maxRequests: 10, maxRetries: 2 });
  assert.equal(c.outlier?.consecutive5xx, 3);
  assert.equal(c.outlier?.baseEjectionMs, 5000);
  assert.equal(c.outlier?.panicThresholdPercent, 30);
  assert.deepEqual(c.healthCheck, { type: 'http', path: '/healthz', expectedStatuses: [200], intervalMs: 2000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 3 });
  assert.equal(c.retry?.perTryTimeoutMs, 200);
  assert.deepEqual(c.retry?.policy.retryOn, ['5xx', 'reset']);
  assert.equal(c.retry?.policy.backoffBaseMs, 10);
  assert.deepEqual(c.retry?.budget, { retryRatio: 0.1, minRetriesPerSecond: 5, ttlMs: 5000 });
  assert.equal(c.timeoutMs, 2000);
  assert.deepEqual(c.rateLimit, { ratePerSecond: 2, burst: 120, perSourceIdentity: true });
});

test('a token-bucket rate limit and a cookie hash key', () => {
  const c = compile({ ...target, loadBalancer: { type: 'Maglev', hashKey: { cookie: { name: 'sid', ttl: '1h' } } }, rateLimit: { tokens: 5, fillInterval: '500ms', burst: 20 } });
  assert.deepEqual(c.hashKey, { cookie: { name: 'sid', ttlMs: 3_600_000 } });
  assert.deepEqual(c.rateLimit, { ratePerSecond: 10, burst: 20, perSourceIdentity: false });
});
