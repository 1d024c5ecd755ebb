import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderErrorDocs } from './error-docs.js';
import { ERROR_CATALOGUE } from './error-catalogue.js';
import { MycelError, toMycelError } from './errors.js';

test('docs/errors.md is generated from the catalogue and up to date (run `npm run docs` if not)', () => {
  const path = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));
  assert.equal(readFileSync(path, 'utf8'), renderErrorDocs());
});

test('every catalogue entry has a 4xx/5xx status, a gRPC status and text', () => {
  for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
    assert.ok(spec.status >= 400 && spec.status < 600, code);
    assert.ok(spec.grpcStatus > 0 && spec.grpcStatus <= 16, code);
    assert.ok(spec.summary.length > 10 && spec.fix.length > 10, code);
    assert.match(code, /^[a-z]+(-[a-z]+)*$/);
  }
});

test('socket errors map to the catalogue', () => {
  const e = (code: string) => Object.assign(new Error(code), { code });
  assert.equal(toMycelError(e('ECONNREFUSED')).code, 'connect-failed');
  assert.equal(toMycelError(e('ECONNRESET')).code, 'upstream-reset');
  assert.equal(toMycelError(e('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')).code, 'tls-handshake-failed');
  assert.equal(toMycelError(e('UNABLE_TO_VERIFY_LEAF_SIGNATURE')).code, 'tls-handshake-failed');
  assert.equal(toMycelError(new Error('weird')).code, 'internal');
  const cancelled = Object.assign(new Error('The pending stream has been canceled (caused by: connect ECONNREFUSED 127.0.0.1:1)'), { code: 'ERR_HTTP2_STREAM_CANCEL', cause: e('ECONNREFUSED') });
  assert.equal(toMycelError(cancelled, 'upstream-reset').code, 'connect-failed', 'the cause decides when it says more');
  assert.equal(toMycelError(Object.assign(new Error('x'), { code: 'ERR_HTTP2_STREAM_CANCEL' }), 'upstream-reset').code, 'upstream-reset');
  const m = new MycelError('no-endpoints', 'svc x');
  assert.equal(toMycelError(m), m);
  assert.equal(m.status, 503);
  assert.equal(m.retryable, true);
  assert.equal(m.message, 'no-endpoints: svc x');
});
