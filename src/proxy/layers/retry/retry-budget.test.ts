import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudget } from './index.js';

test('under 100% failures, retries stay within ratio x requests + minimum x ttl in every window, and use it', () => {
  const clock = { t: 0 };
  const ttlMs = 10_000;
  const buckets = 10;
  const budget = new RetryBudget({ retryRatio: 0.2, minRetriesPerSecond: 5, ttlMs, buckets }, () => clock.t);
  const width = ttlMs / buckets;
  const durationMs = 60_000;
  const requestsPerBucket = new Array<number>(durationMs / width).fill(0);
  const retriesPerBucket = new Array<number>(durationMs / width).fill(0);
  // 100 requests a second; every attempt fails, and each request retries for as long as the budget lets it.
  for (clock.t = 0; clock.t < durationMs; clock.t += 10) {
    const b = Math.floor(clock.t / width);
    budget.deposit();
    requestsPerBucket[b]!++;
    for (let attempt = 0; attempt < 1000 && budget.tryWithdraw(); attempt++) retriesPerBucket[b]!++;
  }
  const sum = (a: number[], from: number, to: number) => a.slice(Math.max(0, from), to).reduce((x, y) => x + y, 0);
  for (let end = 1; end <= requestsPerBucket.length; end++) {
    const retries = sum(retriesPerBucket, end - buckets, end);
    const requests = sum(requestsPerBucket, end - buckets, end);
    assert.ok(retries <= 0.2 * requests + 5 * (ttlMs / 1000), `window ending at bucket ${end}: ${retries} retries for ${requests} requests`);
  }
  const totalRetries = sum(retriesPerBucket, 0, retriesPerBucket.length);
  const totalRequests = sum(requestsPerBucket, 0, requestsPerBucket.length);
  const bound = 0.2 * totalRequests + 5 * (durationMs / 1000);
  assert.ok(totalRetries <= bound, `${totalRetries} retries over the run, bound ${bound}`);
  assert.ok(totalRetries >= 0.9 * bound, `${totalRetries} retries: the budget is there to be used (bound ${bound})`);
});

test('the minimum lets a quiet destination retry; spent retries come back as the window slides', () => {
  const clock = { t: 0 };
  const budget = new RetryBudget({ retryRatio: 0.5, minRetriesPerSecond: 2, ttlMs: 5000, buckets: 5 }, () => clock.t);
  assert.equal(budget.available, 10);
  let granted = 0;
  for (let i = 0; i < 100 && budget.tryWithdraw(); i++) granted++;
  assert.equal(granted, 10, 'minRetriesPerSecond x ttl with no traffic at all');
  for (let i = 0; i < 4; i++) budget.deposit();
  assert.equal(budget.available, 2, 'half a retry per request');
  clock.t = 4999;
  assert.equal(budget.tryWithdraw(), true);
  assert.equal(budget.tryWithdraw(), true);
  assert.equal(budget.tryWithdraw(), false);
  clock.t = 5000;
  assert.equal(budget.available, 8, 'the first bucket (10 retries, 4 requests) left the window; the last 2 retries stay');
  clock.t = 1_000_000;
  assert.equal(budget.available, 10, 'a long pause empties every bucket');
});
