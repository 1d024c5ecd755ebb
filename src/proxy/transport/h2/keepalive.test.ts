// HTTP/2 keepalive of the sidecar's session pool: a peer that stops answering PINGs (a silent partition, a frozen
// host) has its session destroyed and the requests on it failed, instead of hanging until TCP gives up; a peer that
// answers keeps its session through a slow response.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { collect, get } from '../../../../test/helpers/upstream-sink.js';
import { H2Client } from './client.js';

const GET = get('a');

/** Speaks just enough HTTP/2 to open a session (its SETTINGS, an ACK of ours), then reads and ignores everything. */
async function deafPeer(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    const settings = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    const ack = Buffer.from([0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]);
    s.write(Buffer.concat([settings, ack]));
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test('a session whose peer stops answering PINGs is closed and its request fails as a reset', { timeout: 20_000 }, async () => {
  const peer = await deafPeer();
  const timeouts: string[] = [];
  const client = new H2Client({
    url: `http://127.0.0.1:${peer.port}`,
    createConnection: () => net.connect({ host: '127.0.0.1', port: peer.port }),
    connectTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    keepalive: () => ({ intervalMs: 50, timeoutMs: 150 }),
    onKeepaliveTimeout: (url) => timeouts.push(url),
  });
  try {
    const first = collect();
    client.request(GET, first.sink);
    const r = await first.done;
    assert.equal(r.error?.code, 'upstream-reset', `expected a reset, got ${JSON.stringify(r)}`);
    assert.deepEqual(timeouts, [`http://127.0.0.1:${peer.port}`]);
  } finally {
    client.close();
    peer.close();
  }
});

test('a peer that answers PINGs keeps its session through a response slower than the ping timeout', { timeout: 20_000 }, async () => {
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (s) => sessions.add(s));
  server.on('stream', (stream) => {
    setTimeout(() => stream.respond({ ':status': 200 }, { endStream: true }), 600);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const timeouts: string[] = [];
  const client = new H2Client({
    url: `http://127.0.0.1:${port}`,
    createConnection: () => net.connect({ host: '127.0.0.1', port }),
    connectTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    keepalive: () => ({ intervalMs: 50, timeoutMs: 150 }),
    onKeepaliveTimeout: (url) => timeouts.push(url),
  });
  try {
    for (let i = 0; i < 2; i++) {
      const c = collect();
      client.request(GET, c.sink);
      assert.deepEqual(await c.done, { status: 200, error: null });
    }
    assert.deepEqual(timeouts, []);
    assert.equal(sessions.size, 1, 'both requests on one session');
  } finally {
    client.close();
    for (const s of sessions) s.destroy();
    server.close();
  }
});
