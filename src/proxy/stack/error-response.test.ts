import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grpcMessage } from './error-response.js';

test('grpc-message is percent-encoded only where the gRPC spec says (outside 0x20-0x7E, and %)', () => {
  assert.equal(grpcMessage('mycel api: connect-failed: connect ECONNREFUSED 127.0.0.1:80 (a/b?c#d)'), 'mycel api: connect-failed: connect ECONNREFUSED 127.0.0.1:80 (a/b?c#d)');
  assert.equal(grpcMessage('100% ok'), '100%25 ok');
  assert.equal(grpcMessage('line\nbreak é'), 'line%0Abreak %C3%A9');
  assert.equal(decodeURIComponent(grpcMessage('a:b%c\r\nd é')), 'a:b%c\r\nd é');
});
