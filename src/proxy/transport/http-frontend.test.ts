import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAbsoluteForm } from './http-frontend.js';
import { requestHeaderList } from './h1/server-response.js';
import { stripHopByHop } from '../stack/exchange.js';

test('absolute-form targets split into authority and origin-form path', () => {
  assert.deepEqual(parseAbsoluteForm('http://api/x?y=1'), { authority: 'api', path: '/x?y=1' });
  assert.deepEqual(parseAbsoluteForm('http://api:8080'), { authority: 'api:8080', path: '/' });
  assert.deepEqual(parseAbsoluteForm('http://api?q'), { authority: 'api', path: '/?q' });
  assert.deepEqual(parseAbsoluteForm('http://api/a#frag'), { authority: 'api', path: '/a' });
  assert.equal(parseAbsoluteForm('http://user@api/'), null, 'userinfo is refused');
  assert.equal(parseAbsoluteForm('ftp://api/'), null);
  assert.equal(parseAbsoluteForm('http:///x'), null);
});

test('request fields: names lower-cased, hop-by-hop and Connection-named fields dropped, te only as trailers', () => {
  const raw = ['Host', 'api', 'Connection', 'keep-alive, X-Secret', 'X-Secret', 's', 'Keep-Alive', '5', 'TE', 'trailers', 'Proxy-Authorization', 'p', 'Accept', '*/*', 'Upgrade', 'h2c', 'Trailer', 'x-sum'];
  assert.deepEqual(requestHeaderList(raw), ['te', 'trailers', 'accept', '*/*', 'trailer', 'x-sum']);
  assert.deepEqual(requestHeaderList(['TE', 'gzip']), []);
});

test('response fields: hop-by-hop dropped, the list reused when clean', () => {
  const clean = ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2'];
  assert.equal(stripHopByHop(clean), clean);
  assert.deepEqual(stripHopByHop(['connection', 'close, x-hop', 'x-hop', '1', 'transfer-encoding', 'chunked', 'x-ok', '1']), ['x-ok', '1']);
});
