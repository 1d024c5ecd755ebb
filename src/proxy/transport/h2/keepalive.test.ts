// HTTP/2 keepalive of the sidecar's session pool: a session whose peer sends nothing within the PING timeout is taken
// out of service (new requests open a new session) while its streams go on; any byte received counts as an answer; a
// session that stays silent is destroyed with its socket. Real sockets; the keepalive's timers are mocked.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { setImmediate as ioTurn } from 'node:timers/promises';
import type { MycelError } from '../../../core/errors.js';
import { F, PREFACE, T, frame, settingsPayload } from '../../../../test/helpers/h2-frames.js';
import { encodeHeaderBlock } from '../../../../test/helpers/hpack.js';
import { collect, get } from '../../../../test/helpers/upstream-sink.js';
import type { ResponseSink, UpstreamRequest } from '../../stack/http-types.js';
import type { ConnectionSlots, Slot } from '../connection-slots.js';
import { H2Client } from './client.js';
import { DEAD_AFTER_TIMEOUTS } from './keepalive.js';

const INTERVAL = 1000;
const TIMEOUT = 1000;
const request = (path: string): UpstreamRequest => ({ ...get('a'), path });

/** Mock time for the keepalive's timers; sockets and setImmediate stay real. */
function mockTime(t: TestContext): void {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
}

/** Advances mock time one timeout at a time (letting I/O in between) until `done`; returns the timeouts it took. */
async function tickUntil(t: TestContext, done: () => boolean, max: number): Promise<number> {
  let n = 0;
  while (!done() && n < max) {
    t.mock.timers.tick(TIMEOUT);
    n++;
    for (let i = 0; i < 20; i++) await ioTurn();
  }
  return n;
}

/** Polls real I/O turns until `cond` (bounded: what it waits for is loopback traffic already sent). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100_000 && !cond(); i++) await ioTurn();
  assert.ok(cond(), `never happened: ${what}`);
}

/** A sink that keeps the status, the body and the error, with a promise for the end. */
function recorder() {
  const r = { status: 0, body: '', error: null as MycelError | null, over: false, done: null as unknown as Promise<void>, sink: null as unknown as ResponseSink };
  let resolve!: () => void;
  r.done = new Promise<void>((res) => (resolve = res));
  const end = () => {
    r.over = true;
    resolve();
  };
  r.sink = {
    onInformational() {},
    onResponseHead: (s: number) => void (r.status = s),
    onResponseData: (c: Buffer) => ((r.body += c.toString()), true),
    onResponseEnd: end,
    onResponseError: (e: MycelError) => ((r.error = e), end()),
  };
  return r;
}

/**
 * An H2Client with keepalive (INTERVAL, TIMEOUT) to 127.0.0.1:port, its sockets and the suspicions it reported.
 * shutdown() waits for every socket to close: a keepalive stopping after its test would clear a timer of the next
 * test's mock clock (mock timer ids restart in each test).
 */
function keepaliveClient(port: number, slots?: ConnectionSlots) {
  const sockets: net.Socket[] = [];
  const timeouts: string[] = [];
  const client = new H2Client({
    url: `http://127.0.0.1:${port}`,
    createConnection: () => {
      const s = net.connect({ host: '127.0.0.1', port });
      sockets.push(s);
      return s;
    },
    connectTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    ...(slots !== undefined ? { slots } : {}),
    keepalive: () => ({ intervalMs: INTERVAL, timeoutMs: TIMEOUT }),
    onKeepaliveTimeout: (url) => timeouts.push(url),
  });
  const shutdown = async () => {
    client.close();
    await Promise.all(sockets.map((s) => (s.closed ? null : new Promise((r) => s.once('close', r).destroy()))));
  };
  return { client, sockets, timeouts, shutdown };
}

/** A connection slot that counts, like the destination's circuit breaker. */
function countingSlot(): Slot & { count: number } {
  return { count: 0, limit: 100, tryAcquire() { this.count++; return null; }, release() { this.count--; } };
}

/**
 * A raw HTTP/2 peer that never answers a PING: it sends its SETTINGS (and an ACK of ours), collects what it reads,
 * and sends what the test tells it to. Stream 1 is the first request of a connection.
 */
async function scriptedPeer() {
  const conns: Array<{ socket: net.Socket; read: Buffer; closed: boolean }> = [];
  const server = net.createServer((socket) => {
    const c = { socket, read: Buffer.alloc(0), closed: false };
    conns.push(c);
    socket.on('error', () => {});
    socket.on('close', () => (c.closed = true));
    socket.on('data', (d: Buffer) => (c.read = Buffer.concat([c.read, d])));
    socket.write(Buffer.concat([frame(T.SETTINGS, 0, 0, settingsPayload([])), frame(T.SETTINGS, F.ACK, 0)]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    conns,
    port: (server.address() as AddressInfo).port,
    /** The connection has sent the HEADERS of stream `id`. */
    hasRequest(i: number, id = 1): boolean {
      const b = conns[i]?.read;
      if (b === undefined || b.length < PREFACE.length) return false;
      for (let at = PREFACE.length; at + 9 <= b.length; at += 9 + b.readUIntBE(at, 3)) {
        if (b[at + 3] === T.HEADERS && (b.readUInt32BE(at + 5) & 0x7fffffff) === id) return true;
      }
      return false;
    },
    send(i: number, bytes: Buffer): void {
      conns[i]!.socket.write(bytes);
    },
    close(): void {
      for (const c of conns) c.socket.destroy();
      server.close();
    },
  };
}

/** A TCP relay that can hold what one of its connections' upstream sends, as a link stalled on retransmits would. */
async function holdingRelay(upstreamPort: number) {
  const conns: Array<{ held: Buffer[] | null; client: net.Socket }> = [];
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    const c = { held: null as Buffer[] | null, client };
    conns.push(c);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.on('data', (d: Buffer) => (c.held !== null ? c.held.push(d) : client.write(d)));
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    conns,
    port: (server.address() as AddressInfo).port,
    hold(i: number): void {
      conns[i]!.held = [];
    },
    release(i: number): void {
      const c = conns[i]!;
      for (const d of c.held ?? []) c.client.write(d);
      c.held = null;
    },
    close(): void {
      for (const c of conns) c.client.destroy();
      server.close();
    },
  };
}

test('a peer that never answers PINGs but keeps sending keeps its session: any byte received is an answer', { timeout: 20_000 }, async (t) => {
  mockTime(t);
  const peer = await scriptedPeer();
  const { client, timeouts, shutdown } = keepaliveClient(peer.port);
  try {
    const r = recorder();
    client.request(request('/stream'), r.sink);
    await until(() => peer.hasRequest(0), 'the request reached the peer');
    peer.send(0, frame(T.HEADERS, F.END_HEADERS, 1, encodeHeaderBlock([[':status', '200']])));
    await until(() => r.status === 200, 'the response head');
    // Many PING timeouts pass, the PING is never answered, but a DATA frame comes in within each of them.
    for (let i = 0; i < 3 * (DEAD_AFTER_TIMEOUTS + 2); i++) {
      t.mock.timers.tick(TIMEOUT);
      peer.send(0, frame(T.DATA, 0, 1, Buffer.from('x')));
      await until(() => r.body.length === i + 1, 'a DATA frame');
    }
    peer.send(0, frame(T.DATA, F.END_STREAM, 1, Buffer.from('.')));
    await r.done;
    assert.deepEqual({ status: r.status, body: r.body.length, error: r.error }, { status: 200, body: 3 * (DEAD_AFTER_TIMEOUTS + 2) + 1, error: null });
    assert.deepEqual(timeouts, [], 'the session was never suspect');
    assert.equal(peer.conns.length, 1, 'one connection throughout');
  } finally {
    await shutdown();
    peer.close();
  }
});

test('a stalled but live peer: the silent session takes no new requests (they open a new one), sends GOAWAY, and its stream completes once the link moves again', { timeout: 20_000 }, async (t) => {
  mockTime(t);
  const slow: http2.ServerHttp2Stream[] = [];
  const goaways: number[] = [];
  const server = http2.createServer();
  let sessions = 0;
  server.on('session', (s) => {
    const n = sessions++;
    s.on('goaway', () => goaways.push(n));
  });
  server.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    if (headers[':path'] === '/slow') {
      stream.write('first;');
      slow.push(stream);
    } else {
      stream.end('fast');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const relay = await holdingRelay((server.address() as AddressInfo).port);
  const { client, sockets, timeouts, shutdown } = keepaliveClient(relay.port);
  try {
    const first = recorder();
    client.request(request('/slow'), first.sink);
    await until(() => first.body === 'first;', 'the first part of the slow response');
    // The link stalls: nothing the server sends gets through, the PING answer neither.
    relay.hold(0);
    await tickUntil(t, () => timeouts.length > 0, 10);
    assert.deepEqual(timeouts, [`http://127.0.0.1:${relay.port}`], 'the session became suspect');
    assert.equal(first.over, false, 'the stream on the suspect session goes on');

    const second = recorder();
    client.request(request('/fast'), second.sink);
    await second.done;
    assert.deepEqual({ status: second.status, body: second.body, error: second.error }, { status: 200, body: 'fast', error: null });
    assert.equal(relay.conns.length, 2, 'the new request opened a new connection');
    await until(() => goaways.includes(0), 'the server got a GOAWAY on the first connection');

    // The link moves again before the session is given up: the stream on it completes.
    slow[0]!.end('second');
    relay.release(0);
    await first.done;
    assert.deepEqual({ status: first.status, body: first.body, error: first.error }, { status: 200, body: 'first;second', error: null });
    // Its last stream over, the suspect session closes its connection.
    await new Promise((r) => sockets[0]!.once('close', r));
  } finally {
    await shutdown();
    relay.close();
    server.close();
  }
});

test('a dead peer: the session becomes suspect, its stream is left to its deadline, then it is destroyed within the bound and its connection slot released', { timeout: 20_000 }, async (t) => {
  mockTime(t);
  const peer = await scriptedPeer();
  const connections = countingSlot();
  const { client, sockets, timeouts, shutdown } = keepaliveClient(peer.port, { connections, pending: countingSlot() });
  try {
    const first = recorder();
    client.request(request('/'), first.sink);
    // The peer got the request and the client its SETTINGS: from now on it says nothing.
    await until(() => peer.hasRequest(0) && sockets[0]!.bytesRead === 18, 'the request sent and the SETTINGS read');
    // Mock time: the first PING goes out one interval in, a timeout later the session is suspect.
    const toSuspect = await tickUntil(t, () => timeouts.length > 0, 10);
    assert.equal(toSuspect, INTERVAL / TIMEOUT + 1, 'suspect one timeout after the first PING');
    assert.equal(first.over, false, 'the stream is not failed by the suspicion');

    // A new request goes to a new connection.
    const second = collect();
    client.request(request('/'), second.sink);
    await until(() => peer.hasRequest(1), 'the second request on a new connection');
    assert.equal(connections.count, 2);

    // Silent for DEAD_AFTER_TIMEOUTS more: destroyed, its stream failed as a reset, its socket and slot gone.
    const toDead = await tickUntil(t, () => first.over, 10);
    assert.equal(toDead, DEAD_AFTER_TIMEOUTS, 'destroyed DEAD_AFTER_TIMEOUTS timeouts after the suspicion');
    assert.equal(first.error?.code, 'upstream-reset');
    assert.match(first.error.message, /sent nothing for 4000 ms after an HTTP\/2 keepalive PING/);
    await until(() => peer.conns[0]!.closed && connections.count === 1, 'the dead connection closed and its slot released');
  } finally {
    await shutdown();
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
      client.request(get('a'), c.sink);
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
