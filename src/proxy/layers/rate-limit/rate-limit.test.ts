import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { request } from '../../../../test/helpers/http.js';
import { RateLimiter, retryAfterSeconds } from './index.js';

test('a burst goes through at once, then the sustained rate; a refusal says how long to wait', () => {
  const clock = { t: 0 };
  const rl = new RateLimiter({ ratePerSecond: 10, burst: 5 }, () => clock.t);
  for (let i = 0; i < 5; i++) assert.equal(rl.take('a'), 0);
  assert.equal(rl.take('a'), 100, 'the next token comes in 100 ms');
  clock.t = 60;
  assert.equal(rl.take('a'), 40);
  clock.t = 100;
  assert.equal(rl.take('a'), 0);
  assert.equal(rl.take('a'), 100);

  // Over ten seconds of a request every millisecond: the burst plus ten a second.
  const steady = new RateLimiter({ ratePerSecond: 10, burst: 5 }, () => clock.t);
  let allowed = 0;
  for (clock.t = 0; clock.t < 10_000; clock.t++) if (steady.take() === 0) allowed++;
  assert.equal(allowed, 5 + 100 - 1, 'the token due at exactly 10 s is outside the run');
});

test('keys have their own buckets; a fractional rate works', () => {
  const clock = { t: 0 };
  const rl = new RateLimiter({ ratePerSecond: 0.5, burst: 1 }, () => clock.t);
  assert.equal(rl.take('spiffe://mycel.local/ns/shop/svc/web'), 0);
  assert.equal(rl.take('spiffe://mycel.local/ns/shop/svc/web'), 2000);
  assert.equal(rl.take('spiffe://mycel.local/ns/shop/svc/cart'), 0);
  assert.equal(retryAfterSeconds(2000), '2');
  assert.equal(retryAfterSeconds(1), '1');
  assert.equal(retryAfterSeconds(2001), '3');
  assert.throws(() => new RateLimiter({ ratePerSecond: 0 }), /positive/);
});

test('a flood of new identities keeps memory bounded and shares one overflow bucket instead of fresh bursts', () => {
  const clock = { t: 0 };
  const rl = new RateLimiter({ ratePerSecond: 1, burst: 2, maxKeys: 100 }, () => clock.t);
  let allowed = 0;
  for (let i = 0; i < 10_000; i++) if (rl.take(`attacker-${i}`) === 0) allowed++;
  assert.equal(rl.size, 100);
  assert.equal(allowed, 100 + 2, 'one burst each for the keys that fit, one burst for all the rest together');

  // Once the tracked keys are idle (their buckets full again), a sweep makes room for new keys of their own.
  clock.t = 5000;
  assert.equal(rl.take('newcomer'), 0);
  assert.equal(rl.take('newcomer'), 0);
  assert.ok(rl.size <= 100 && rl.size >= 1);
  assert.notEqual(rl.take('newcomer'), 0, 'the newcomer has its own bucket');
});

test('sweeps run at most once a second, so keys still active keep the map full', () => {
  const clock = { t: 0 };
  const rl = new RateLimiter({ ratePerSecond: 1, burst: 100, maxKeys: 10 }, () => clock.t);
  for (let i = 0; i < 10; i++) for (let j = 0; j < 50; j++) rl.take(`busy-${i}`); // each is 50 s from a full bucket
  clock.t = 2000;
  assert.equal(rl.take('late'), 0, 'served from the overflow bucket');
  assert.equal(rl.size, 10);
});

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

test('limiting a real server per client identity: 429 with Retry-After once the burst is spent', async () => {
  const limiter = new RateLimiter({ ratePerSecond: 0.01, burst: 3 });
  const server = http.createServer((req, res) => {
    const wait = limiter.take(String(req.headers['x-client'] ?? ''));
    if (wait === 0) res.end('ok');
    else res.writeHead(429, { 'retry-after': retryAfterSeconds(wait), 'x-mycel-error': 'rate-limited' }).end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const statuses: number[] = [];
  let retryAfter: string | undefined;
  for (let i = 0; i < 5; i++) {
    const r = await request(addr, { headers: { 'x-client': 'web' } });
    statuses.push(r.status);
    if (r.status === 429) retryAfter = String(r.headers['retry-after']);
  }
  assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  assert.ok(Number(retryAfter) > 90 && Number(retryAfter) <= 100, `retry-after ${retryAfter}`);
  assert.equal((await request(addr, { headers: { 'x-client': 'cart' } })).status, 200, 'another client has its own bucket');
});
