// Unit tests for the benchmark's percentile, median and ratio helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, percentile, percentileSorted, ratio, round } from './stats.js';

test('nearest-rank percentiles of 1..100 are the values themselves', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile(xs, 0), 1);
});

test('percentile of a small sample picks an existing value, never interpolates', () => {
  assert.equal(percentileSorted([1, 2, 3, 4], 50), 2);
  assert.equal(percentileSorted([1, 2, 3, 4], 99), 4);
  assert.equal(percentileSorted([7], 99), 7);
  assert.equal(percentileSorted([], 50), undefined);
});

test('percentile does not reorder its input and rejects out-of-range p', () => {
  const xs = [3, 1, 2];
  percentile(xs, 50);
  assert.deepEqual(xs, [3, 1, 2]);
  assert.throws(() => percentile(xs, 101), RangeError);
});

test('median skips missing values and averages the middle pair', () => {
  assert.equal(median([3, null, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([undefined, null]), null);
  assert.equal(median([Number.NaN, 5]), 5);
});

test('ratio guards against missing, negative and near-zero denominators', () => {
  assert.equal(ratio(10, 4), 2.5);
  assert.equal(ratio(null, 4), null);
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(1, -0.2), null);
  assert.equal(ratio(1, 0.0005, 0.001), null);
  assert.equal(ratio(1, 0.002, 0.001), 500);
});

test('round keeps null and fixes decimals', () => {
  assert.equal(round(1.23456, 2), 1.23);
  assert.equal(round(null, 2), null);
  assert.equal(round(Number.POSITIVE_INFINITY, 2), null);
});
