// The config stream with several control-plane replicas: the first URL is dead, so the source moves on to the next
// and takes its config from there; when that replica goes away, it moves on again (to the first, now alive).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage, STREAM_PATH } from '../../api/v1alpha1/stream-messages.js';
import { silentLogger } from '../../core/log.js';
import { closedPort } from '../../../test/helpers/http.js';
import { ControlConfigSource } from './control-source.js';

const MESH = { apiVersion: 'mycel.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh', namespace: 'default' }, spec: {} };

/** A replica that welcomes every stream and sends one config; `streams` counts the streams it got. */
async function fakeReplica(name: string, port = 0): Promise<{ url: string; streams: number; close(): Promise<void> }> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  const state = { streams: 0 };
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== STREAM_PATH) return stream.respond({ ':status': 404 }, { endStream: true });
    state.streams++;
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
    stream.write(encodeMessage({ type: 'welcome', replica: name, heartbeatMs: 1000, leaseMs: 10_000 }));
    stream.write(encodeMessage({ type: 'config', version: 7, resources: [MESH], unresolved: [] }));
    stream.resume();
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get streams() {
      return state.streams;
    },
    close: () => new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    }),
  };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(cond(), `waited 10 s for ${what}`);
}

test('with several replicas the stream moves to the next one when it cannot reach or loses the current one', { timeout: 30_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-control-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const deadPort = await closedPort();
  const second = await fakeReplica('second');
  const source = new ControlConfigSource({
    url: `http://127.0.0.1:${deadPort}`,
    alternates: [second.url],
    token: 't',
    proxyId: 'p1',
    service: 'web',
    namespace: 'default',
    endpoint: undefined,
    subscribe: [],
    stateDir: dir,
    log: silentLogger,
    backoffMinMs: 10,
    backoffMaxMs: 50,
  });
  t.after(() => source.close());
  const plan = await source.load();
  assert.equal(plan.version, 7);
  assert.equal(source.status().replica, 'second');
  assert.equal(source.status().url, second.url);

  // The first URL comes alive; the second goes away: the stream comes back on the first.
  const first = await fakeReplica('first', deadPort);
  await second.close();
  await until('the stream on the first replica', () => source.status().replica === 'first');
  assert.equal(source.status().url, first.url);
  assert.ok(first.streams >= 1);
  await first.close();
});
