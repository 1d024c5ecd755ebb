import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatGrpcTimeout, parseGrpcTimeout, setGrpcTimeout } from './deadline.js';

test('grpc-timeout values are read in every unit, and malformed ones are ignored', () => {
  assert.equal(parseGrpcTimeout('2H'), 7_200_000);
  assert.equal(parseGrpcTimeout('3M'), 180_000);
  assert.equal(parseGrpcTimeout('5S'), 5000);
  assert.equal(parseGrpcTimeout('250m'), 250);
  assert.equal(parseGrpcTimeout('1500u'), 1.5);
  assert.equal(parseGrpcTimeout('2000000n'), 2);
  assert.equal(parseGrpcTimeout('99999999m'), 99_999_999);
  for (const bad of ['', 'S', '5', '5s', '-5S', '5.0S', '123456789S', ' 5S', '5 S']) assert.equal(parseGrpcTimeout(bad), -1, bad);
});

test('the time left is written in the finest unit that fits eight digits, rounded down, never zero', () => {
  assert.equal(formatGrpcTimeout(1999.7), '1999m');
  assert.equal(formatGrpcTimeout(0.25), '250u');
  assert.equal(formatGrpcTimeout(0), '1u', 'an expired deadline still says "almost nothing", not "no deadline"');
  assert.equal(formatGrpcTimeout(-5), '1u');
  assert.equal(formatGrpcTimeout(2e8), '200000S');
  assert.equal(formatGrpcTimeout(1e12), '277777H');
  assert.equal(formatGrpcTimeout(1e15), '99999999H', 'capped at the largest value there is');
  for (const ms of [0.5, 1, 17, 86_400_000, 5e10]) {
    const back = parseGrpcTimeout(formatGrpcTimeout(ms));
    assert.ok(back > 0 && back <= ms, `${ms} ms -> ${formatGrpcTimeout(ms)}`);
  }
});

test('setGrpcTimeout replaces the field in place or appends it', () => {
  const h = ['content-type', 'application/grpc', 'grpc-timeout', '5S', 'te', 'trailers'];
  setGrpcTimeout(h, '100m');
  assert.deepEqual(h, ['content-type', 'application/grpc', 'grpc-timeout', '100m', 'te', 'trailers']);
  const none = ['content-type', 'application/grpc'];
  setGrpcTimeout(none, '7m');
  assert.deepEqual(none, ['content-type', 'application/grpc', 'grpc-timeout', '7m']);
});
