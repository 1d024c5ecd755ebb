import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../../../test/helpers/seeded-random.js';
import { createBalancer, hash64, MaglevBalancer, PeakEwmaBalancer, type BalancerOptions, type EndpointBalancer, type EndpointState } from './index.js';

interface Ep {
  key: string;
}
const eps = (n: number, from = 0): Ep[] => Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + from + 1}:15006` }));

/** A reference of the same hash in BigInt arithmetic: FNV-1a 64 over UTF-16 code units, murmur3 fmix64, top 53 bits. */
function referenceHash(key: string): number {
  const mask = (1n << 64n) - 1n;
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < key.length; i++) h = ((h ^ BigInt(key.charCodeAt(i))) * 0x100000001b3n) & mask;
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & mask;
  h ^= h >> 33n;
  h = (h * 0xc4ceb9fe1a85ec53n) & mask;
  h ^= h >> 33n;
  return Number(h >> 11n);
}

test('hash64 computes the 64-bit hash exactly in 32-bit halves (checked against BigInt arithmetic)', () => {
  const rnd = seededRandom(7);
  const keys = ['', 'a', 'user-42', '10.0.0.1:15006_17', 'ünïcødé ☃', '\uffff\u0000\ud83d\ude00'];
  for (let i = 0; i < 500; i++) keys.push(Array.from({ length: Math.floor(rnd() * 40) }, () => String.fromCharCode(Math.floor(rnd() * 0x10000))).join(''));
  for (const k of keys) {
    const h = hash64(k);
    assert.equal(h, referenceHash(k), JSON.stringify(k));
    assert.ok(Number.isSafeInteger(h) && h >= 0);
  }
});

test('round robin gives every endpoint the same share and keeps going fairly after an update', () => {
  const b = createBalancer<Ep>({ policy: 'RoundRobin' }, { random: seededRandom(1) });
  assert.equal(b.pick(), undefined, 'no endpoints, no pick');
  b.update(eps(4));
  const counts = new Map<string, number>();
  for (let i = 0; i < 4000; i++) {
    const s = b.pick()!;
    counts.set(s.endpoint.key, (counts.get(s.endpoint.key) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()], [1000, 1000, 1000, 1000]);
  b.update(eps(3, 2));
  counts.clear();
  for (let i = 0; i < 3000; i++) {
    const s = b.pick()!;
    counts.set(s.endpoint.key, (counts.get(s.endpoint.key) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), eps(3, 2).map((e) => e.key).sort());
  assert.deepEqual([...counts.values()], [1000, 1000, 1000]);
});

test('update keeps the state of endpoints that stay, starts fresh ones, and takes the newest endpoint object', () => {
  for (const policy of ['RoundRobin', 'LeastRequest', 'EWMA', 'RingHash', 'Maglev'] as const) {
    const b = createBalancer<Ep & { zone?: string }>({ policy, ...(policy === 'Maglev' ? { tableSize: 251 } : {}) } as BalancerOptions, { random: seededRandom(2) });
    b.update(eps(3));
    const kept = b.endpoints[1]!;
    b.start(kept);
    b.start(kept);
    const renewed = { key: kept.endpoint.key, zone: 'b' };
    b.update([renewed, ...eps(2, 10), renewed]);
    assert.equal(b.endpoints.length, 3, `${policy}: a repeated key counts once`);
    assert.equal(b.endpoints[0], kept, `${policy}: same state object`);
    assert.equal(kept.inFlight, 2);
    assert.equal(kept.endpoint, renewed);
    assert.equal(b.endpoints[1]!.inFlight, 0);
    b.end(kept, 5, true);
    b.end(kept, 5, true);
    b.end(kept, 5, true);
    assert.equal(kept.inFlight, 0, 'an extra end() never goes below zero');
  }
});

test('least request (P2C) spreads in-flight requests evenly and avoids an endpoint that holds on to its requests', () => {
  const b = createBalancer<Ep>({ policy: 'LeastRequest' }, { random: seededRandom(3) });
  b.update(eps(10));
  for (let i = 0; i < 1000; i++) b.start(b.pick()!);
  const loads = b.endpoints.map((s) => s.inFlight);
  assert.equal(loads.reduce((x, y) => x + y, 0), 1000);
  assert.ok(Math.max(...loads) - Math.min(...loads) <= 3, `in flight per endpoint ${loads.join(',')}`);

  // One endpoint never answers; the others answer at once. It gets some requests, then no more than its neighbours hold.
  const c = createBalancer<Ep>({ policy: 'LeastRequest' }, { random: seededRandom(4) });
  c.update(eps(5));
  const stuck = c.endpoints[0]!;
  let stuckPicks = 0;
  for (let i = 0; i < 10_000; i++) {
    const s = c.pick()!;
    c.start(s);
    if (s === stuck) stuckPicks++;
    else c.end(s, 1, true);
  }
  assert.ok(stuckPicks <= 2, `the stuck endpoint got ${stuckPicks} of 10000`);
});

/** Simulates requests every `stepMs` for [from, to) with mock time; latencyOf(endpoint index, t) gives each request's RTT. */
function simulate(b: EndpointBalancer<Ep>, clock: { t: number }, from: number, to: number, stepMs: number, latencyOf: (i: number, t: number) => number): number[] {
  const picks = new Array<number>(b.endpoints.length).fill(0);
  const pending: { doneAt: number; s: EndpointState<Ep>; sent: number }[] = [];
  for (clock.t = from; clock.t < to; clock.t += stepMs) {
    for (let k = pending.length - 1; k >= 0; k--) {
      const p = pending[k]!;
      if (p.doneAt > clock.t) continue;
      b.end(p.s, clock.t - p.sent, true);
      pending.splice(k, 1);
    }
    const s = b.pick()!;
    const i = b.endpoints.indexOf(s);
    picks[i] = (picks[i] ?? 0) + 1;
    b.start(s);
    pending.push({ doneAt: clock.t + latencyOf(i, clock.t), s, sent: clock.t });
  }
  for (const p of pending) b.end(p.s, p.doneAt - p.sent, true);
  return picks;
}

test('peak EWMA moves traffic away from a slow endpoint, and back once it is fast again', () => {
  const clock = { t: 0 };
  const b = new PeakEwmaBalancer<Ep>({ now: () => clock.t, random: seededRandom(5) }, { decayMs: 10_000 });
  b.update(eps(3));
  let slow = true;
  const latency = (i: number) => (i === 2 && slow ? 200 : 10);
  const warm = simulate(b, clock, 0, 5_000, 5, latency);
  const during = simulate(b, clock, 5_000, 30_000, 5, latency);
  const share = (p: number[], i: number) => p[i]! / p.reduce((x, y) => x + y, 0);
  assert.ok(share(warm, 2) < 0.2, `slow endpoint's share while warming up: ${share(warm, 2)}`);
  assert.ok(share(during, 2) < 0.02, `slow endpoint's share: ${share(during, 2)} (picks ${during.join(',')})`);
  assert.ok(during[2]! >= 1, 'an idle slow endpoint is still probed now and then (its estimate decays)');
  slow = false;
  simulate(b, clock, 30_000, 60_000, 5, latency);
  const after = simulate(b, clock, 60_000, 90_000, 5, latency);
  assert.ok(share(after, 2) > 0.2, `recovered endpoint's share: ${share(after, 2)} (picks ${after.join(',')})`);
});

test('peak EWMA starts a new endpoint at the mean estimate of the others: a fair part of the traffic, neither flood nor famine', () => {
  for (const rtt of [2, 10, 400]) {
    const clock = { t: 0 };
    const b = createBalancer<Ep>({ policy: 'EWMA', defaultRttMs: 30 }, { now: () => clock.t, random: seededRandom(6) });
    b.update(eps(1));
    assert.equal(b.endpoints[0]!.rttMs, 30, 'with nothing to learn from, the default');
    b.update(eps(2));
    simulate(b, clock, 0, 10_000, 5, () => rtt);
    b.update(eps(3));
    const first = simulate(b, clock, 10_000, 11_000, 5, () => rtt);
    assert.ok(first[2]! > 20 && first[2]! < 100, `RTT ${rtt}: the new endpoint's picks in its first second: ${first.join(',')}`);
    const later = simulate(b, clock, 11_000, 41_000, 5, () => rtt);
    const share = later[2]! / later.reduce((x, y) => x + y, 0);
    assert.ok(share > 0.2 && share < 0.47, `RTT ${rtt}: the new endpoint's share once warm: ${share}`);
  }
});

test('a failure can count as a slow answer (failurePenaltyMs), so a fast-failing endpoint draws no extra traffic', () => {
  const clock = { t: 0 };
  const b = new PeakEwmaBalancer<Ep>({ now: () => clock.t, random: seededRandom(8) }, { failurePenaltyMs: 500 });
  b.update(eps(2));
  const bad = b.endpoints[1]!;
  b.start(bad);
  clock.t = 1;
  b.end(bad, 1, false);
  assert.equal(bad.rttMs, 500);
  assert.ok(b.cost(bad, clock.t) > b.cost(b.endpoints[0]!, clock.t));
});

function keyMapping(b: EndpointBalancer<Ep>, keys: readonly string[]): string[] {
  return keys.map((k) => b.pick(k)!.endpoint.key);
}

for (const policy of ['RingHash', 'Maglev'] as const) {
  test(`${policy}: adding a sixth endpoint moves about 1/6 of 10,000 keys, almost all to the new endpoint`, () => {
    const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
    const b = createBalancer<Ep>({ policy }, { random: seededRandom(9) });
    b.update(eps(5));
    const before = keyMapping(b, keys);
    assert.deepEqual(keyMapping(b, keys), before, 'the same key always goes to the same endpoint');
    const shares = new Map<string, number>();
    for (const k of before) shares.set(k, (shares.get(k) ?? 0) + 1);
    const tolerance = policy === 'Maglev' ? 0.15 : 0.5;
    for (const [ep, n] of shares) assert.ok(Math.abs(n / 2000 - 1) < tolerance, `${ep} holds ${n} of 10000 keys`);

    b.update(eps(6));
    const after = keyMapping(b, keys);
    const added = eps(6)[5]!.key;
    let moved = 0;
    let movedToNew = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      if (after[i] === added) movedToNew++;
    }
    const fraction = moved / keys.length;
    assert.ok(fraction > 0.5 / 6 && fraction < 1.6 / 6, `moved ${fraction} (ideal ${1 / 6})`);
    assert.ok(movedToNew / moved > (policy === 'RingHash' ? 0.999 : 0.8), `${movedToNew} of ${moved} moved keys went to the new endpoint`);
  });

  test(`${policy}: every proxy builds the same mapping whatever order its endpoint list has; no key, endpoints take turns`, () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `session-${i}`);
    const a = createBalancer<Ep>({ policy }, { random: seededRandom(10) });
    const b = createBalancer<Ep>({ policy }, { random: seededRandom(11) });
    a.update(eps(7));
    b.update(eps(7).reverse());
    assert.deepEqual(keyMapping(a, keys), keyMapping(b, keys));
    const seen = new Set<string>();
    for (let i = 0; i < 7; i++) seen.add(a.pick()!.endpoint.key);
    assert.equal(seen.size, 7);
    a.update([]);
    assert.equal(a.pick('x'), undefined);
  });
}

test('Maglev refuses a table size that is not a prime', () => {
  const clock = { now: () => 0, random: Math.random };
  assert.throws(() => new MaglevBalancer(clock, { tableSize: 65536 }), /prime/);
  assert.doesNotThrow(() => new MaglevBalancer(clock, { tableSize: 251 }));
});
