import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { tapEventOf, type TapEvent } from './tap.js';
import { TapStream } from './tap-stream.js';

function event(i: number): TapEvent {
  return tapEventOf({
    direction: 'inbound', source: 'web', destination: 'api', peerIdentity: null, method: 'GET', authority: 'api', path: `/n/${i}`, headers: [],
    route: null, status: 200, grpcStatus: null, endpoint: null, errorCode: null, startTime: 0, endTime: 1,
  }, 'api-1', null);
}

async function readAll(out: PassThrough): Promise<Array<Record<string, unknown>>> {
  let text = '';
  for await (const chunk of out) text += String(chunk);
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('events reach the client as one JSON line each, and the stream ends at the limit', async () => {
  const out = new PassThrough();
  let ended = 0;
  const s = new TapStream(out, 3);
  s.onEnd = () => ended++;
  for (let i = 0; i < 5; i++) s.offer(event(i));
  const lines = await readAll(out);
  assert.deepEqual(lines.map((l) => l.path), ['/n/0', '/n/1', '/n/2']);
  assert.equal(ended, 1);
  s.offer(event(9));
  assert.equal(s.buffered, 0);
});

test('a client that does not read loses events, counted and told, and the buffer stays bounded', async () => {
  // Nobody reads `out` until the end: its buffer fills, write() says so, and the tap buffers at most 50 events.
  const out = new PassThrough({ highWaterMark: 1024 });
  const s = new TapStream(out, 0, 50);
  const total = 5000;
  let maxBuffered = 0;
  for (let i = 0; i < total; i++) {
    s.offer(event(i));
    maxBuffered = Math.max(maxBuffered, s.buffered);
    if (i % 100 === 0) await tick();
  }
  await tick();
  assert.ok(maxBuffered <= 50, `buffered ${maxBuffered}`);
  assert.ok(s.dropped > 0);
  s.lost(7); // a proxy reports events it could not send
  const reading = readAll(out);
  await tick();
  await tick();
  s.end();
  const lines = await reading;
  const events = lines.filter((l) => l.path !== undefined);
  const notices = lines.filter((l) => l.dropped !== undefined);
  assert.ok(notices.length >= 1);
  for (const n of notices) assert.match(String(n.message), /dropped/);
  const told = notices.reduce((a, n) => a + Number(n.dropped), 0);
  assert.ok(told <= s.dropped);
  // Every event is either delivered or counted as dropped; the last notice may still be unwritten at end().
  assert.equal(events.length + s.dropped, total + 7);
  // Delivered events keep their order.
  const ns = events.map((e) => Number(String(e.path).slice(3)));
  assert.deepEqual(ns, [...ns].sort((a, b) => a - b));
});
