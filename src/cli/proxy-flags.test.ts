import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseUpstream } from './proxy-flags.js';
import { parseListenAddress } from '../core/listen-address.js';

test('--upstream forms', () => {
  assert.deepEqual(parseUpstream('api=9191'), { service: 'api', listen: { host: '127.0.0.1', port: 9191 } });
  assert.deepEqual(parseUpstream('api:8080=0.0.0.0:9191'), { service: 'api', servicePort: 8080, listen: { host: '0.0.0.0', port: 9191 } });
  for (const bad of ['api', '=9191', 'API=9191', 'api=x', 'api=70000']) assert.throws(() => parseUpstream(bad), /invalid --upstream/, bad);
});

test('listen addresses', () => {
  assert.deepEqual(parseListenAddress('15001'), { host: '127.0.0.1', port: 15001 });
  assert.deepEqual(parseListenAddress(':15006'), { host: '127.0.0.1', port: 15006 });
  assert.deepEqual(parseListenAddress('[::1]:80'), { host: '::1', port: 80 });
  assert.throws(() => parseListenAddress('nope'));
});
