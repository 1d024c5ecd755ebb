// Key naming of the etcd store: objects map to `<prefix><kind>/<namespace>/<name>`, other keys under the prefix are not
// objects, and the prefix's range ends right after its last possible key.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdKeys } from './etcd-keys.js';

test('an object key round-trips; other keys under the prefix are not objects', () => {
  const keys = new EtcdKeys('/mycel/v1/');
  const key = keys.key('HTTPRoute', 'shop', 'checkout');
  assert.equal(key.toString(), '/mycel/v1/HTTPRoute/shop/checkout');
  assert.deepEqual(keys.parse(key), { kind: 'HTTPRoute', namespace: 'shop', name: 'checkout' });
  for (const other of ['/mycel/v1/', '/mycel/v1/Service/default', '/mycel/v1/a/b/c/d', '/mycel/v1/a//c', '/mycel/v2/a/b/c', '/mycel/v1']) {
    assert.equal(keys.parse(Buffer.from(other)), undefined, other);
  }
});

test('the range of a prefix holds every key that starts with it and nothing else', () => {
  const keys = new EtcdKeys('/mycel/v1/');
  assert.equal(keys.end.toString(), '/mycel/v10');
  const inRange = (k: string): boolean => Buffer.compare(Buffer.from(k), keys.start) >= 0 && Buffer.compare(Buffer.from(k), keys.end) < 0;
  assert.ok(inRange('/mycel/v1/Service/default/a'));
  assert.ok(inRange('/mycel/v1/\u{10FFFF}'));
  assert.ok(!inRange('/mycel/v1'));
  assert.ok(!inRange('/mycel/v10'));
  assert.throws(() => new EtcdKeys(''), /must not be empty/);
});
