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
  assert.match(JSON.stringify(computeView(index, { service: 'web', namespace: 'default', subscriptions: ['ledger'] }).resources), /"port":5432}/);
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

test('views carry a service as it is now: endpoints that come and go and Service changes show in the next view', () => {
  const index = new MeshIndex();
  index.load([service('api', { ports: [{ port: 80 }] })]);
  const endpoint = (proxyId: string, address: string): StoredObject => ({ kind: 'Endpoint', namespace: 'default', name: proxyId, value: { service: 'api', namespace: 'default', address, port: 15006, labels: {}, ready: true, proxyId, replica: 'r1' }, revision: ++revision, ephemeral: true });
  const addresses = () => {
    const view = computeView(index, { service: 'web', namespace: 'default', subscriptions: ['api'] });
    const api = view.resources.find((r) => (r as { kind: string; metadata: { name: string } }).metadata.name === 'api') as { spec: { ports: Array<{ port: number }>; endpoints?: Array<{ address: string }> } };
    return { port: api.spec.ports[0]?.port, addresses: (api.spec.endpoints ?? []).map((e) => e.address) };
  };
  assert.deepEqual(addresses(), { port: 80, addresses: [] });
  index.apply([{ type: 'put', object: endpoint('api-1', '10.0.0.1') }]);
  assert.deepEqual(addresses(), { port: 80, addresses: ['10.0.0.1'] });
  index.apply([{ type: 'put', object: endpoint('api-2', '10.0.0.2') }]);
  assert.deepEqual(addresses(), { port: 80, addresses: ['10.0.0.1', '10.0.0.2'] });
  index.apply([{ type: 'put', object: service('api', { ports: [{ port: 81 }] }) }]);
  assert.deepEqual(addresses(), { port: 81, addresses: ['10.0.0.1', '10.0.0.2'] });
  index.apply([{ type: 'delete', kind: 'Endpoint', namespace: 'default', name: 'api-1', revision: ++revision }]);
  assert.deepEqual(addresses(), { port: 81, addresses: ['10.0.0.2'] });
  // Two views of the same service share one object (serialized once by the push server).
  const a = computeView(index, { service: 'web', namespace: 'default', subscriptions: ['api'] }).resources;
  const b = computeView(index, { service: 'shop', namespace: 'default', subscriptions: ['api'] }).resources;
  assert.equal(a.find((r) => (r as { metadata: { name: string } }).metadata.name === 'api'), b.find((r) => (r as { metadata: { name: string } }).metadata.name === 'api'));
});
