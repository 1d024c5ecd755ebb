// NDJSON splitting: lines cut across chunks, several per chunk, a last line without a newline, and lines that are not
// JSON skipped without ending the stream.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NdjsonSplitter } from './ndjson.js';

test('values come out whole, however the text is chunked', () => {
  const s = new NdjsonSplitter();
  assert.deepEqual(s.push('{"a":1}\n{"a"'), [{ a: 1 }]);
  assert.deepEqual(s.push(':2}\n\n{"a":3}\n{"a":'), [{ a: 2 }, { a: 3 }]);
  assert.deepEqual(s.push('4}'), []);
  assert.deepEqual(s.end(), [{ a: 4 }]);
  assert.deepEqual(s.end(), []);
});

test('a line that is not JSON is skipped; CRLF is fine', () => {
  const s = new NdjsonSplitter();
  assert.deepEqual(s.push('{"ok":true}\r\nnot json\n[1,2]\n'), [{ ok: true }, [1, 2]]);
});

test('an endless line is dropped rather than kept in memory', () => {
  const s = new NdjsonSplitter(16);
  assert.deepEqual(s.push('{"long":"' + 'x'.repeat(40)), []);
  assert.deepEqual(s.push('"}\n{"b":1}\n'), [{ b: 1 }]);
});
