import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { httpExchangeChannel } from '../core/diagnostics.js';
import { TapHub, type TapEvent, type TapFacts } from './tap.js';
import { TapRelay } from './tap-relay.js';

const facts = (path: string, status = 200): TapFacts => ({
  direction: 'inbound', source: 'web', destination: 'api', peerIdentity: null, method: 'GET', authority: 'api', path, headers: [],
  route: null, status, grpcStatus: null, endpoint: null, errorCode: null, startTime: 0, endTime: 1,
});

test('relayed taps batch their events per tap, at most 100 a message, and stop cleanly', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const hub = new TapHub('api-1', () => null);
    const sent: Array<{ id: string; events: TapEvent[]; dropped: number }> = [];
    const relay = new TapRelay(hub, (id, events, dropped) => (sent.push({ id, events, dropped }), true));
    relay.start('a', {});
    relay.start('b', { status: '5xx' });
    for (let i = 0; i < 250; i++) httpExchangeChannel.publish(facts(`/${i}`, i % 50 === 0 ? 503 : 200));
    assert.equal(sent.length, 0, 'nothing is sent before the flush interval');
    mock.timers.tick(100);
    assert.deepEqual(sent.map((s) => [s.id, s.events.length, s.dropped]), [['a', 100, 0], ['a', 100, 0], ['a', 50, 0], ['b', 5, 0]]);
    relay.stop('a');
    relay.stop('b');
    assert.equal(httpExchangeChannel.hasSubscribers, false);
    assert.equal(relay.open, 0);
  } finally {
    mock.timers.reset();
  }
});

test('a stream that cannot take a batch turns it into a dropped count, reported with the next batch', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const hub = new TapHub('api-1', () => null);
    let accept = false;
    const sent: Array<{ events: number; dropped: number }> = [];
    const relay = new TapRelay(hub, (_id, events, dropped) => {
      if (!accept) return false;
      sent.push({ events: events.length, dropped });
      return true;
    });
    relay.start('a', {});
    for (let i = 0; i < 1500; i++) httpExchangeChannel.publish(facts(`/${i}`));
    mock.timers.tick(100);
    assert.equal(sent.length, 0);
    accept = true;
    mock.timers.tick(100);
    // Nothing new: the drops (500 over the pending bound, 1000 not sent) are reported on their own.
    assert.deepEqual(sent, [{ events: 0, dropped: 1500 }]);
    httpExchangeChannel.publish(facts('/next'));
    mock.timers.tick(100);
    assert.deepEqual(sent[1], { events: 1, dropped: 0 });
    relay.stopAll();
    assert.equal(httpExchangeChannel.hasSubscribers, false);
  } finally {
    mock.timers.reset();
  }
});
