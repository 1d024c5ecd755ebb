import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CA_WARN_MS, caExpiryState, leafExpiryState } from './ca-expiry.js';

const now = Date.UTC(2026, 0, 1);

test('a root or intermediate warns under 30 days and fails once expired', () => {
  assert.equal(caExpiryState(now + CA_WARN_MS + 1, now), 'ok');
  assert.equal(caExpiryState(now + CA_WARN_MS - 1, now), 'warn');
  assert.equal(caExpiryState(now, now), 'expired');
});

test('a leaf warns with under a quarter of its own lifetime left, whatever that lifetime', () => {
  const day = 86_400_000;
  assert.equal(leafExpiryState(now + day / 2, now - day / 2, now), 'ok', 'half left: renewal is due, not late');
  assert.equal(leafExpiryState(now + day / 5, now - (4 * day) / 5, now), 'warn');
  assert.equal(leafExpiryState(now + 900, now - 3100, now), 'warn', 'a 4 s test leaf with 0.9 s left');
  assert.equal(leafExpiryState(now - 1, now - day, now), 'expired');
});
