import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostPort, plainAddress } from './original-dst.js';

test('addresses get one spelling: IPv4-mapped as IPv4, IPv6 without its zone', () => {
  assert.equal(plainAddress('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(plainAddress('10.1.2.3'), '10.1.2.3');
  assert.equal(plainAddress('fd00:6d79::2'), 'fd00:6d79::2');
  assert.equal(plainAddress('fe80::1%eth0'), 'fe80::1');
  assert.equal(plainAddress('::ffff:a01:203'), '::ffff:a01:203', 'only the dotted form is an IPv4 address');
});

test('host and port print with IPv6 in brackets', () => {
  assert.equal(hostPort({ address: 'fd00:6d79::2', port: 9000 }), '[fd00:6d79::2]:9000');
  assert.equal(hostPort({ address: '10.1.2.3', port: 80 }), '10.1.2.3:80');
});
