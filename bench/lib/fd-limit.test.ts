// Unit tests for reading the open-file limit of the benchmark process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureOpenFiles, openFileLimit, parseOpenFileLimit } from './fd-limit.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95524                95524                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

test('the "Max open files" line gives the soft and the hard limit', () => {
  assert.deepEqual(parseOpenFileLimit(LIMITS), { soft: 1024, hard: 524288 });
  assert.deepEqual(parseOpenFileLimit(LIMITS.replace('524288 ', 'unlimited')), { soft: 1024, hard: Infinity });
  assert.equal(parseOpenFileLimit('Max processes 1 1 processes\n'), null);
});

test('this process has a readable limit, and asking for no more than it changes nothing', () => {
  const now = openFileLimit();
  assert.ok(now !== null && now.soft > 0 && now.hard >= now.soft);
  assert.deepEqual(ensureOpenFiles(1), now);
});
