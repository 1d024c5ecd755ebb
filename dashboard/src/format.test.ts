// Number formats and health thresholds as the dashboard shows them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fmtAge, fmtMs, fmtPercent, fmtRps, health } from './format.js';

test('health: 99% and up is good, 95% warns, below fails, no traffic is idle', () => {
  assert.equal(health(1, 3), 'good');
  assert.equal(health(0.99, 3), 'good');
  assert.equal(health(0.985, 3), 'warn');
  assert.equal(health(0.95, 3), 'warn');
  assert.equal(health(0.9, 3), 'bad');
  assert.equal(health(null, 3), 'idle');
  assert.equal(health(1, 0), 'idle');
});

test('rates, percentages, latencies and ages read short', () => {
  assert.deepEqual([0, 0.05, 4, 12.34, 1234.5].map(fmtRps), ['0', '0.05', '4.0', '12.3', '1,235']);
  assert.deepEqual([null, 1, 0.9996, 0.991, 0.05].map(fmtPercent), ['–', '100%', '100%', '99.1%', '5%']);
  assert.deepEqual([null, 0.25, 3.21, 42.4, 1500, 12_000].map(fmtMs), ['–', '0.25 ms', '3.2 ms', '42 ms', '1.50 s', '12.0 s']);
  assert.equal(fmtAge(1000, 5000), '4s ago');
  assert.equal(fmtAge(0, 7_200_000), '2h ago');
  assert.equal(fmtAge(3 * 3600_000, 0), 'in 3h');
});
