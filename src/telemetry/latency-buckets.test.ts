import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BOUNDS_MS, LATENCY_BUCKET_COUNT, latencyBucket, quantileMs } from './latency-buckets.js';

test('the buckets span 0.1 ms to 30 s with an open bucket above, bounds inclusive', () => {
  assert.equal(LATENCY_BOUNDS_MS[0], 0.1);
  assert.equal(LATENCY_BOUNDS_MS.at(-1), 30_000);
  assert.equal(LATENCY_BUCKET_COUNT, LATENCY_BOUNDS_MS.length + 1);
  assert.equal(latencyBucket(0), 0);
  assert.equal(latencyBucket(0.1), 0);
  assert.equal(latencyBucket(0.11), 1);
  assert.equal(latencyBucket(1), LATENCY_BOUNDS_MS.indexOf(1));
  assert.equal(latencyBucket(45_000), LATENCY_BOUNDS_MS.length);
});

test('quantiles interpolate inside the bucket the rank falls in, like histogram_quantile', () => {
  const counts = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);
  assert.equal(quantileMs(counts, 0.5), null);
  // 100 observations in (1 ms, 2.5 ms]: the median is half way through that bucket.
  counts[LATENCY_BOUNDS_MS.indexOf(2.5)] = 100;
  assert.equal(quantileMs(counts, 0.5), 1.75);
  assert.equal(quantileMs(counts, 1), 2.5);
  // 900 more in the first bucket: p50 lands there (0 .. 0.1 ms), p99 stays in the slow one.
  counts[0] = 900;
  assert.ok(Math.abs((quantileMs(counts, 0.5) as number) - 0.1 * (500 / 900)) < 1e-12);
  assert.equal(quantileMs(counts, 0.99), 1 + 1.5 * (90 / 100));
  // A rank in the open bucket answers the last bound.
  counts[LATENCY_BUCKET_COUNT - 1] = 10_000;
  assert.equal(quantileMs(counts, 0.99), 30_000);
});
