// The registry's leases against a real store (file store in a temp dir) and a clock the test moves: a lapsed lease
// removes the endpoint unless another replica has registered it since; a goodbye removes it at once.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../core/log.js';
import { FileStore } from '../store/file-store.js';
import type { EndpointRecord } from '../translate/mesh-index.js';
import { ENDPOINT_KIND, Registry } from './registry.js';

const LEASE_MS = 1000;
let dir: string;
let store: FileStore;
let now = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mycel-registry-'));
  store = new FileStore(dir);
  await store.open();
});

after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** A replica's registry on the shared store, on the test's clock. */
function replica(name: string): Registry {
  return new Registry({ store, replica: name, leaseMs: LEASE_MS, log: silentLogger, expireRestored: false, now: () => now });
}

function record(proxyId: string, replicaName: string): EndpointRecord {
  return { service: 'api', namespace: 'default', address: '10.0.0.7', port: 15006, labels: {}, ready: true, proxyId, replica: replicaName };
}

const stored = (proxyId: string) => store.get(ENDPOINT_KIND, 'default', proxyId)?.value as EndpointRecord | undefined;

test('a lapsed lease removes the endpoint, unless another replica registered it since', async () => {
  const a = replica('a');
  const b = replica('b');
  // p1 registers through a, then its stream breaks and it never comes back: a's lease removes it.
  await a.register(record('p1', 'a'));
  a.detach('p1');
  now += LEASE_MS + 1;
  await a.sweep();
  assert.equal(stored('p1'), undefined);

  // p2 registers through a, its stream to a breaks, and it registers through b (its proxy moved there).
  await a.register(record('p2', 'a'));
  a.detach('p2');
  await b.register(record('p2', 'b'));
  now += LEASE_MS + 1;
  b.renew('p2');
  await a.sweep();
  assert.equal(stored('p2')?.replica, 'b', 'a\'s lapsed lease removed an endpoint that b holds now');
  await b.sweep();
  assert.equal(stored('p2')?.replica, 'b');

  // Once b's lease lapses too, b removes it.
  b.detach('p2');
  now += LEASE_MS + 1;
  await b.sweep();
  assert.equal(stored('p2'), undefined);
});

test('a goodbye removes the endpoint at once', async () => {
  const a = replica('a');
  await a.register(record('p3', 'a'));
  assert.ok(stored('p3'));
  await a.deregister('p3');
  assert.equal(stored('p3'), undefined);
  assert.equal(a.leaseOf('p3'), undefined);
});

test('a replica that did not run for a while (stopped, blocked) extends the leases by that time instead of expiring them', async () => {
  const a = replica('a');
  a.start();
  try {
    await a.register(record('p4', 'a'));
    // The process is stopped for five leases: when it runs again, its first turn comes that late.
    now += 5 * LEASE_MS;
    await a.tick();
    assert.equal(stored('p4')?.replica, 'a', 'the endpoint outlived a stall of its replica');
    // The proxy's heartbeat now reaches the replica: the lease goes on as usual.
    a.renew('p4');
    now += LEASE_MS - 1;
    await a.tick();
    assert.equal(stored('p4')?.replica, 'a');
    // Without heartbeats (the proxy is gone) it lapses one lease later, as any lease does.
    now += LEASE_MS;
    await a.tick();
    assert.equal(stored('p4'), undefined);
  } finally {
    a.stop();
  }
});
