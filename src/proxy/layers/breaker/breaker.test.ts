import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { request } from '../../../../test/helpers/http.js';
import { ERROR_CATALOGUE } from '../../../core/error-catalogue.js';
import { MycelError } from '../../../core/errors.js';
import { CircuitBreaker, CircuitBreakers } from './index.js';

test('each counter refuses at its limit with its reason, and frees a slot on release', () => {
  const b = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 2, maxRequests: 3, maxRetries: 0 });
  assert.equal(b.connections.tryAcquire(), null);
  assert.equal(b.connections.tryAcquire(), 'max-connections');
  assert.equal(b.pending.tryAcquire(), null);
  assert.equal(b.pending.tryAcquire(), null);
  assert.equal(b.pending.tryAcquire(), 'max-pending-requests');
  for (let i = 0; i < 3; i++) assert.equal(b.requests.tryAcquire(), null);
  assert.equal(b.requests.tryAcquire(), 'max-requests');
  assert.equal(b.retries.tryAcquire(), 'max-retries', 'a zero limit refuses every retry');
  assert.equal(b.open, true);
  b.connections.release();
  b.connections.release();
  assert.equal(b.connections.count, 0, 'an extra release never goes below zero');
  assert.equal(b.connections.tryAcquire(), null);
  b.requests.release();
  assert.equal(b.requests.tryAcquire(), null);
});

test('new limits keep the counts in flight; a lowered limit refuses until they drain', () => {
  const b = new CircuitBreaker();
  for (let i = 0; i < 10; i++) assert.equal(b.requests.tryAcquire(), null, 'defaults are generous');
  assert.equal(b.open, false);
  b.setLimits({ maxRequests: 5 });
  assert.equal(b.requests.count, 10);
  assert.equal(b.requests.tryAcquire(), 'max-requests');
  for (let i = 0; i < 6; i++) b.requests.release();
  assert.equal(b.requests.tryAcquire(), null);
});

test('one breaker per destination, kept across config pushes, forgotten when the destination goes', () => {
  const all = new CircuitBreakers();
  const api = all.configure('api.shop', { maxRequests: 1 });
  assert.equal(api.requests.tryAcquire(), null);
  assert.equal(all.configure('api.shop', { maxRequests: 1 }), api);
  assert.deepEqual(all.openDestinations(), ['api.shop']);
  all.configure('cart.shop', {});
  all.retain(['cart.shop']);
  assert.equal(all.get('api.shop'), undefined);
  assert.notEqual(all.get('cart.shop'), undefined);
});

test('the refusals map to catalogue errors: circuit-open and budget-exhausted 503 UNAVAILABLE, rate-limited 429 RESOURCE_EXHAUSTED', () => {
  assert.deepEqual([ERROR_CATALOGUE['circuit-open'].status, ERROR_CATALOGUE['circuit-open'].grpcStatus], [503, 14]);
  assert.deepEqual([ERROR_CATALOGUE['budget-exhausted'].status, ERROR_CATALOGUE['budget-exhausted'].grpcStatus], [503, 14]);
  assert.deepEqual([ERROR_CATALOGUE['rate-limited'].status, ERROR_CATALOGUE['rate-limited'].grpcStatus], [429, 8]);
  const e = new MycelError('circuit-open', 'api.shop: max-requests');
  assert.equal(e.message, 'circuit-open: api.shop: max-requests');
});

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

test('gating real requests: two slow requests hold the limit, the rest are refused until one finishes', async () => {
  const held: http.ServerResponse[] = [];
  let arrived: (() => void) | null = null;
  const server = http.createServer((_req, res) => {
    held.push(res);
    arrived?.();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const breaker = new CircuitBreaker({ maxRequests: 2 });
  const gated = (): Promise<number> | string => {
    const why = breaker.requests.tryAcquire();
    if (why !== null) return why;
    return request(addr).then(
      (r) => {
        breaker.requests.release();
        return r.status;
      },
      (err: unknown) => {
        breaker.requests.release();
        throw err;
      },
    );
  };
  // Resolves once n requests have reached the server (at once if they already have).
  const reached = (n: number) =>
    new Promise<void>((r) => {
      arrived = () => held.length >= n && r();
      arrived();
    });
  const twoArrived = reached(2);
  const first = gated();
  const second = gated();
  assert.ok(first instanceof Promise && second instanceof Promise);
  await twoArrived;
  assert.deepEqual([gated(), gated(), gated()], ['max-requests', 'max-requests', 'max-requests']);
  assert.equal(held.length, 2, 'the refused requests never reached the server');
  held[0]!.end('ok');
  assert.equal(await first, 200);
  const third = gated();
  assert.ok(third instanceof Promise, 'a slot is free again');
  held[1]!.end('ok');
  assert.equal(await second, 200);
  await reached(3);
  held[2]!.end('ok');
  assert.equal(await third, 200);
  assert.equal(breaker.requests.count, 0);
});
