import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NO_RESPONSE, OutlierDetector } from './index.js';

const keys = (n: number) => Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:15006`);

test('consecutive 5xx eject an endpoint; a success in between starts the count over', () => {
  const now = 1000;
  const ejected: string[] = [];
  const d = new OutlierDetector({ consecutive5xx: 3, maxEjectionPercent: 100 }, () => now, (key, until, times) => ejected.push(`${key} ${until} ${times}`));
  const [a, b] = keys(2) as [string, string];
  d.update([a, b]);
  d.report(a, 500);
  d.report(a, 503);
  d.report(a, 200);
  d.report(a, 500);
  d.report(a, 500);
  assert.equal(d.isEjected(a), false);
  d.report(a, NO_RESPONSE);
  assert.equal(d.isEjected(a), true, 'no response counts as a 5xx');
  assert.deepEqual(ejected, [`${a} 31000 1`]);
  assert.equal(d.isEjected(b), false);
  d.report('10.9.9.9:1', 500);
  assert.equal(d.isEjected('10.9.9.9:1'), false, 'reports about unknown endpoints are ignored');
});

test('consecutive gateway errors count 502, 503, 504 and no response; another 5xx breaks the streak', () => {
  let now = 0;
  const d = new OutlierDetector({ consecutive5xx: 0, consecutiveGatewayErrors: 3, maxEjectionPercent: 100 }, () => now);
  const [a] = keys(1) as [string];
  d.update([a]);
  for (const s of [500, 500, 500, 500, 502, 503, 500, 504, NO_RESPONSE]) d.report(a, s);
  assert.equal(d.isEjected(a), false, `${d.ejectedUntil(a)}`);
  d.report(a, 502);
  assert.equal(d.isEjected(a), true);
  now += 29_999;
  assert.equal(d.isEjected(a), true);
  now += 1;
  assert.equal(d.isEjected(a), false, 'back after the base ejection time');
});

test('each ejection lasts base x times ejected, capped; time back in service earns forgiveness', () => {
  let now = 0;
  const d = new OutlierDetector({ consecutive5xx: 1, baseEjectionMs: 10_000, maxEjectionMs: 25_000, maxEjectionPercent: 100 }, () => now);
  const [a] = keys(1) as [string];
  d.update([a]);
  const ejectAndWait = () => {
    d.report(a, 500);
    const lasted = d.ejectedUntil(a) - now;
    now = d.ejectedUntil(a);
    return lasted;
  };
  assert.deepEqual([ejectAndWait(), ejectAndWait(), ejectAndWait(), ejectAndWait()], [10_000, 20_000, 25_000, 25_000]);
  // Four ejections so far; 25 s back in service forgive two of them, so the next counts as the third: 3 x 10 s, capped.
  now += 25_000;
  assert.equal(ejectAndWait(), 25_000);
  now += 1_000_000;
  assert.equal(ejectAndWait(), 10_000, 'a long healthy spell starts from the base again');
  d.report(a, 500);
  assert.equal(d.ejectedUntil(a), now + 20_000);
  const until = d.ejectedUntil(a);
  d.report(a, 500);
  assert.equal(d.ejectedUntil(a), until, 'failures of requests sent before the ejection do not extend it');
});

test('no more than maxEjectionPercent of the endpoints are ejected at once, but at least one may be', () => {
  let now = 0;
  const ten = keys(10);
  const d = new OutlierDetector({ consecutive5xx: 1, maxEjectionPercent: 20 }, () => now);
  d.update(ten);
  for (const k of ten.slice(0, 3)) d.report(k, 500);
  assert.deepEqual(ten.map((k) => d.isEjected(k)).filter(Boolean).length, 2);
  assert.equal(d.isEjected(ten[2]!), false);
  const gen = d.generation;
  now += 30_000;
  d.report(ten[2]!, 500);
  assert.equal(d.isEjected(ten[2]!), true, 'room again once the first ejections ended');
  assert.equal(d.generation, gen + 1);

  const two = new OutlierDetector({ consecutive5xx: 1, maxEjectionPercent: 10 }, () => now);
  two.update(keys(2));
  two.report(keys(2)[0]!, 500);
  assert.equal(two.isEjected(keys(2)[0]!), true, '10% of 2 rounds up to one endpoint');
  const none = new OutlierDetector({ consecutive5xx: 1, maxEjectionPercent: 0 }, () => now);
  none.update(keys(2));
  none.report(keys(2)[0]!, 500);
  assert.equal(none.isEjected(keys(2)[0]!), false, '0% turns ejection off');
});

test('update keeps counters and ejections of endpoints that stay, forgets the others', () => {
  let now = 0;
  const d = new OutlierDetector({ consecutive5xx: 2, maxEjectionPercent: 100 }, () => now);
  const [a, b, c] = keys(3) as [string, string, string];
  d.update([a, b]);
  d.report(a, 500);
  d.report(b, 500);
  d.report(b, 500);
  d.update([a, c]);
  d.report(a, 500);
  assert.equal(d.isEjected(a), true, 'the first 500 still counted');
  assert.equal(d.ejectedUntil(b), 0, 'b is forgotten');
  now += 1;
  assert.equal(d.isEjected(c), false);
});
