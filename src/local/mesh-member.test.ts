// The environment `mycel run` gives an app: its HTTP clients go through its sidecar, loopback stays direct, and each
// upstream binding has a variable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meshEnvironment, upstreamVariable } from './mesh-member.js';

test('HTTP_PROXY and http_proxy lead to the outbound listener; NO_PROXY keeps loopback direct; one variable per binding', () => {
  const env = meshEnvironment('web', { outbound: '127.0.0.1:4001', inbound: '127.0.0.1:4002', admin: '127.0.0.1:4003', upstreams: { catalog: '127.0.0.1:4004', 'billing.v2': '127.0.0.1:4005' } });
  assert.deepEqual(env, {
    HTTP_PROXY: 'http://127.0.0.1:4001',
    http_proxy: 'http://127.0.0.1:4001',
    NO_PROXY: 'localhost,127.0.0.1,::1',
    no_proxy: 'localhost,127.0.0.1,::1',
    MYCEL_SERVICE: 'web',
    MYCEL_OUTBOUND: '127.0.0.1:4001',
    MYCEL_ADMIN: '127.0.0.1:4003',
    MYCEL_UPSTREAM_CATALOG: '127.0.0.1:4004',
    MYCEL_UPSTREAM_BILLING_V2: '127.0.0.1:4005',
  });
  assert.equal(upstreamVariable('my-api'), 'MYCEL_UPSTREAM_MY_API');
});
