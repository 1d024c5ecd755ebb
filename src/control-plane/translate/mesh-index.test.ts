// Unit tests of the mesh index's change reports: which changes force every view to be recomputed (host names) and
// which touch only the views that depend on one service.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StoredObject } from '../store/store.js';
import { MeshIndex } from './mesh-index.js';
import { computeView } from './view.js';

let revision = 0;
function service(name: string, spec: Record<string, unknown>): StoredObject {
  return { kind: 'Service', namespace: 'default', name, value: { apiVersion: 'mycel.dev/v1alpha1', kind: 'Service', metadata: { name, namespace: 'default' }, spec }, revision: ++revision, ephemeral: false };
}

test('a Service changed in place under the same host names touches its dependants only, not name resolution', () => {
  const index = new MeshIndex();
  index.load([service('api', { ports: [{ port: 80 }] }), service('ledger', { ports: [{ port: 5432 }], endpoints: [{ address: '192.0.2.1', port: 5432 }] })]);
  const changes = index.apply([{ type: 'put', object: service('ledger', { ports: [{ port: 5432 }], endpoints: [{ address: '192.0.2.1', port: 6432 }] }) }]);
  assert.deepEqual([...changes.services], ['default/ledger']);
  assert.equal(changes.hosts, false);
  assert.equal(changes.global, false);
  assert.equal(index.resolveHost('ledger'), 'default/ledger');
  const view = computeView(index, { service: 'web', namespace: 'default', subscriptions: ['ledger'] });
  assert.match(JSON.stringify(view.resources), /"port":6432/);
});

test('a Service that gains a host name, appears or goes away redoes name resolution', () => {
  const index = new MeshIndex();
  index.load([service('api', { ports: [{ port: 80 }] })]);
  const renamed = index.apply([{ type: 'put', object: service('api', { ports: [{ port: 80 }], hosts: ['api.example.com'] }) }]);
  assert.equal(renamed.hosts, true);
  assert.equal(index.resolveHost('api.example.com'), 'default/api');
  assert.equal(index.apply([{ type: 'put', object: service('db', { ports: [{ port: 5432 }] }) }]).hosts, true);
  assert.equal(index.resolveHost('db'), 'default/db');
  assert.equal(index.apply([{ type: 'delete', kind: 'Service', namespace: 'default', name: 'db', revision: ++revision }]).hosts, true);
  assert.equal(index.resolveHost('db'), undefined);
});

test('an in-place change batched with a new service still redoes name resolution', () => {
  const index = new MeshIndex();
  index.load([service('api', { ports: [{ port: 80 }] })]);
  const changes = index.apply([{ type: 'put', object: service('db', { ports: [{ port: 5432 }] }) }, { type: 'put', object: service('api', { ports: [{ port: 81 }] }) }]);
  assert.equal(changes.hosts, true);
  assert.deepEqual([...changes.services].sort(), ['default/api', 'default/db']);
});
