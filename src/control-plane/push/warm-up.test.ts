// Warm-up decisions: which views wait for a proxy that already serves a config, and when the warm-up ends (mock timers).

import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../core/log.js';
import { holdReason, Warmup } from './warm-up.js';

const view = (endpoints: Record<string, number>, unresolved = 0) => ({ endpoints: new Map(Object.entries(endpoints)), unresolved });

describe('holdReason', () => {
  it('first view on a stream: waits while a service it uses has no endpoint or a name does not resolve', () => {
    assert.match(holdReason(view({ 'default/web': 1, 'default/api': 0 }), null, 'default/web') ?? '', /default\/api has no endpoint/);
    assert.match(holdReason(view({ 'default/web': 1, 'default/api': 2 }, 1), null, 'default/web') ?? '', /1 subscribed name/);
    assert.equal(holdReason(view({ 'default/web': 1, 'default/api': 2 }), null, 'default/web'), null);
  });

  it('the proxy\'s own service without endpoints never holds (its sidecar registers it after hello)', () => {
    assert.equal(holdReason(view({ 'default/api': 0 }), null, 'default/api'), null);
  });

  it('after a view was sent: waits only when a service would lose its last endpoint', () => {
    const sent = new Map([['default/api', 2], ['default/db', 0]]);
    assert.match(holdReason(view({ 'default/api': 0, 'default/db': 0 }), sent, 'default/web') ?? '', /default\/api would lose its last endpoint/);
    assert.match(holdReason(view({ 'default/db': 0 }), sent, 'default/web') ?? '', /default\/api would lose/, 'a service gone from the view counts as none');
    assert.equal(holdReason(view({ 'default/api': 1, 'default/db': 0 }), sent, 'default/web'), null, 'fewer endpoints, but some');
    assert.equal(holdReason(view({ 'default/api': 2, 'default/db': 0 }, 3), sent, 'default/web'), null, 'what was empty before may stay empty');
  });
});

describe('Warmup', () => {
  it('is active for its duration, then calls onEnd once and drops the gauge', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const gauge: number[] = [];
    const onEnd = mock.fn();
    const w = new Warmup({ log: silentLogger, onEnd, gauge: (v) => gauge.push(v) });
    assert.equal(w.active, false);
    w.start(20_000, 'test');
    assert.equal(w.active, true);
    assert.deepEqual(gauge, [1]);
    t.mock.timers.tick(15_000);
    assert.equal(w.remainingMs(), 5_000);
    assert.equal(onEnd.mock.callCount(), 0);
    t.mock.timers.tick(5_000);
    assert.equal(w.active, false);
    assert.equal(onEnd.mock.callCount(), 1);
    assert.deepEqual(gauge, [1, 0]);
    t.mock.timers.tick(60_000);
    assert.equal(onEnd.mock.callCount(), 1);
  });

  it('a second start extends it, a shorter one does not cut it, 0 does nothing, stop ends it without releasing', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const onEnd = mock.fn();
    const w = new Warmup({ log: silentLogger, onEnd });
    w.start(0, 'off');
    assert.equal(w.active, false);
    w.start(10_000, 'first');
    t.mock.timers.tick(5_000);
    w.start(10_000, 'again');
    w.start(1_000, 'shorter');
    t.mock.timers.tick(9_999);
    assert.equal(w.active, true);
    t.mock.timers.tick(1);
    assert.equal(onEnd.mock.callCount(), 1);
    w.start(10_000, 'third');
    w.stop();
    t.mock.timers.tick(20_000);
    assert.equal(w.active, false);
    assert.equal(onEnd.mock.callCount(), 1);
  });
});
