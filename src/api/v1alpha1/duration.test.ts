import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DURATION_PATTERN, parseDuration } from './duration.js';

test('durations in Gateway API style parse to milliseconds', () => {
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('0'), 0);
  for (const bad of ['', '10', 's', '10 s', '-1s', '1d', '1s ']) assert.equal(parseDuration(bad), undefined, bad);
});

test('the JSON Schema duration pattern accepts exactly what parseDuration accepts', () => {
  const pattern = new RegExp(DURATION_PATTERN);
  const samples = ['250ms', '10s', '1h30m', '1.5s', '0', '1m1ms', '2h0m0s', '', '10', 's', '10 s', '-1s', '1d', '1s ', '1.s', '.5s', '00', '1msm', '5mss'];
  for (const s of samples) assert.equal(pattern.test(s), parseDuration(s) !== undefined, s);
});
