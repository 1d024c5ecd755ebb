import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { ActiveHealthChecker, HealthyEndpoints, OutlierDetector } from './index.js';

interface Ep {
  key: string;
  address: string;
  port: number;
  labels: Record<string, string>;
}
const ep = (i: number, zone = 'a', port = 15006): Ep => ({ key: `10.0.0.${i}:${port}`, address: `10.0.0.${i}`, port, labels: { zone } });
const keysOf = (eps: readonly Ep[]) => eps.map((e) => e.key);

function ejectingView(options: ConstructorParameters<typeof HealthyEndpoints>[0], clock: { t: number }) {
  const outliers = new OutlierDetector({ consecutive5xx: 1, baseEjectionMs: 10_000, maxEjectionPercent: 100 }, () => clock.t);
  const view = new HealthyEndpoints<Ep>(options, { outliers, now: () => clock.t });
  return { outliers, view };
}

test('ejected endpoints leave the set and come back when their ejection ends, with no timer', () => {
  const clock = { t: 0 };
  const { outliers, view } = ejectingView({}, clock);
  const eps = [ep(1), ep(2), ep(3), ep(4)];
  view.update(eps);
  const v1 = view.refresh();
  assert.deepEqual(keysOf(view.endpoints), keysOf(eps));
  assert.equal(view.refresh(), v1, 'nothing changed, same version');
  outliers.report(eps[1]!.key, 503);
  const v2 = view.refresh();
  assert.notEqual(v2, v1);
  assert.deepEqual(keysOf(view.endpoints), keysOf([eps[0]!, eps[2]!, eps[3]!]));
  assert.equal(view.mode, 'healthy');
  clock.t = 9_999;
  assert.equal(view.refresh(), v2);
  clock.t = 10_000;
  assert.notEqual(view.refresh(), v2);
  assert.deepEqual(keysOf(view.endpoints), keysOf(eps));
});

test('panic: below the threshold of healthy endpoints, traffic spreads over all of them', () => {
  const clock = { t: 0 };
  const { outliers, view } = ejectingView({ panicThresholdPercent: 50 }, clock);
  const eps = Array.from({ length: 10 }, (_, i) => ep(i + 1));
  view.update(eps);
  for (const e of eps.slice(0, 5)) outliers.report(e.key, 500);
  view.refresh();
  assert.equal(view.mode, 'healthy', '50% healthy is not below 50%');
  assert.equal(view.endpoints.length, 5);
  outliers.report(eps[5]!.key, 500);
  view.refresh();
  assert.equal(view.mode, 'panic');
  assert.deepEqual(keysOf(view.endpoints), keysOf(eps));

  const { outliers: o2, view: strict } = ejectingView({ panicThresholdPercent: 0 }, clock);
  strict.update(eps.slice(0, 2));
  o2.report(eps[0]!.key, 500);
  o2.report(eps[1]!.key, 500);
  strict.refresh();
  assert.deepEqual(strict.endpoints, [], 'threshold 0 never panics: no healthy endpoint, no endpoint');
});

test('locality: the caller\'s zone first, all zones once too few local endpoints are healthy', () => {
  const clock = { t: 0 };
  const { outliers, view } = ejectingView({ localZone: 'a', localityFailoverPercent: 70 }, clock);
  const local = [ep(1, 'a'), ep(2, 'a'), ep(3, 'a'), ep(4, 'a')];
  const remote = [ep(5, 'b'), ep(6, 'b'), ep(7, 'b'), ep(8, 'b')];
  view.update([...remote, ...local]);
  view.refresh();
  assert.equal(view.mode, 'local');
  assert.deepEqual(keysOf(view.endpoints), keysOf(local));
  outliers.report(local[0]!.key, 500);
  view.refresh();
  assert.equal(view.mode, 'local', '3 of 4 local endpoints healthy is 75%');
  assert.deepEqual(keysOf(view.endpoints), keysOf(local.slice(1)));
  outliers.report(local[1]!.key, 500);
  view.refresh();
  assert.equal(view.mode, 'healthy', '2 of 4 is below 70%: fail over to every healthy endpoint');
  assert.deepEqual(keysOf(view.endpoints).sort(), keysOf([...remote, ...local.slice(2)]).sort());

  const elsewhere = new HealthyEndpoints<Ep>({ localZone: 'c' });
  elsewhere.update([...remote, ...local]);
  elsewhere.refresh();
  assert.equal(elsewhere.mode, 'healthy', 'no endpoint in the caller\'s zone: all zones');
  assert.equal(elsewhere.endpoints.length, 8);
});

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

test('active health and ejections combine: a closed port and an ejected endpoint both leave the set', async () => {
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = net.createServer((c) => c.destroy());
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    ports.push((s.address() as net.AddressInfo).port);
  }
  const eps: Ep[] = ports.map((port) => ({ key: `127.0.0.1:${port}`, address: '127.0.0.1', port, labels: {} }));
  const clock = { t: 0 };
  const active = new ActiveHealthChecker<Ep>({ type: 'tcp', unhealthyThreshold: 1 });
  const outliers = new OutlierDetector({ consecutive5xx: 1, maxEjectionPercent: 100 }, () => clock.t);
  const view = new HealthyEndpoints<Ep>({ panicThresholdPercent: 30 }, { active, outliers, now: () => clock.t });
  view.update(eps);
  await active.checkNow();
  const v = view.refresh();
  assert.equal(view.endpoints.length, 3);

  servers[0]!.close();
  await once(servers[0]!, 'close');
  await active.checkNow();
  outliers.report(eps[1]!.key, 502);
  assert.notEqual(view.refresh(), v);
  assert.deepEqual(keysOf(view.endpoints), [eps[2]!.key]);
  assert.equal(view.mode, 'healthy', 'one of three is above the 30% panic threshold');
});
