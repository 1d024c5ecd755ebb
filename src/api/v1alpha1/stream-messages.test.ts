import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, parseControlMessage, parseProxyMessage, TAP_MAX_BATCH, type TapEvent } from './stream-messages.js';

const event: TapEvent = {
  time: 1764000000000, proxy: 'web-1', direction: 'outbound', sourceService: 'web', destinationService: 'api', sourceIdentity: null, destinationIdentity: null,
  method: 'GET', authority: 'api', path: '/', status: 200, grpcStatus: null, latencyMs: 1, route: null, endpoint: null, retries: 0, error: null, traceId: null,
};

test('tap start and stop messages carry a validated filter', () => {
  const start = parseControlMessage(encodeMessage({ type: 'tap', id: 'r1-1', action: 'start', filter: { service: 'api', status: '5xx', direction: 'inbound' } }).trim());
  assert.deepEqual(start, { type: 'tap', id: 'r1-1', action: 'start', filter: { service: 'api', status: '5xx', direction: 'inbound' } });
  assert.deepEqual(parseControlMessage('{"type":"tap","id":"r1-1","action":"stop"}'), { type: 'tap', id: 'r1-1', action: 'stop', filter: {} });
  assert.match(String(parseControlMessage('{"type":"tap","id":"x","action":"start","filter":{"status":"abc"}}')), /invalid message at filter.status/);
  assert.match(String(parseControlMessage('{"type":"tap","id":"x","action":"pause"}')), /invalid message at action/);
});

test('tap-events batches are bounded in count and in the size of each field', () => {
  const ok = parseProxyMessage(encodeMessage({ type: 'tap-events', id: 'r1-1', events: [event], dropped: 3 }).trim());
  assert.ok(!(ok instanceof Error));
  const many = Array.from({ length: TAP_MAX_BATCH + 1 }, () => event);
  assert.ok(parseProxyMessage(JSON.stringify({ type: 'tap-events', id: 'r1-1', events: many, dropped: 0 })) instanceof Error);
  assert.ok(parseProxyMessage(JSON.stringify({ type: 'tap-events', id: 'r1-1', events: [{ ...event, path: '/' + 'p'.repeat(5000) }], dropped: 0 })) instanceof Error);
  assert.ok(parseProxyMessage(JSON.stringify({ type: 'tap-events', id: 'r1-1', events: [], dropped: -1 })) instanceof Error);
});
