import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { CircuitBreaker } from '../layers/breaker/index.js';
import { collect, get } from '../../../test/helpers/upstream-sink.js';
import { H1Pool } from './h1/pool.js';
import { H2Client } from './h2/client.js';

const closers: Array<() => void> = [];
after(() => {
  for (const c of closers) c();
});

/** An HTTP/1.1 server that answers only when told (release), counting the connections it accepted. */
async function heldHttpServer(): Promise<{ port: number; held: number; release(): void; accepted: number }> {
  const waiting: http.ServerResponse[] = [];
  const s = { port: 0, held: 0, accepted: 0, release: () => {} };
  const server = http.createServer((_req, res) => {
    waiting.push(res);
    s.held = waiting.length;
  });
  server.on('connection', () => s.accepted++);
  s.release = () => {
    for (const res of waiting.splice(0)) res.end('ok');
    s.held = 0;
  };
  s.port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  closers.push(() => {
    server.close();
    server.closeAllConnections();
  });
  return s;
}

/** A TCP server that accepts and never says a word: a TLS handshake to it never finishes. */
async function silentServer(): Promise<{ port: number; readonly open: number; dropAll(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  const dropAll = () => {
    for (const sock of sockets) sock.destroy();
    sockets.clear();
  };
  closers.push(() => {
    dropAll();
    server.close();
  });
  return {
    port,
    get open() {
      return sockets.size;
    },
    dropAll,
  };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

test('HTTP/1.1: a new connection beyond maxConnections is refused with circuit-open at once; a reused one is not', async () => {
  const server = await heldHttpServer();
  const breaker = new CircuitBreaker({ maxConnections: 1 });
  const pool = new H1Pool({ connect: () => ({ socket: net.connect(server.port, '127.0.0.1'), event: 'connect' }), connectTimeoutMs: 2000, idleTimeoutMs: 10_000, poolIdleMs: 10_000, slots: breaker });
  closers.push(() => pool.close());
  const first = collect();
  pool.request(get('a'), first.sink);
  await until('the first request to be held', () => server.held === 1);
  assert.equal(breaker.connections.count, 1);
  const second = collect();
  pool.request(get('a'), second.sink);
  const refused = await second.done;
  assert.equal(refused.error?.code, 'circuit-open');
  assert.match(refused.error?.message ?? '', /max-connections: 1 connections to the destination are open/);
  server.release();
  assert.equal((await first.done).status, 200);
  const third = collect();
  pool.request(get('a'), third.sink);
  await until('the third request to be held', () => server.held === 1);
  server.release();
  assert.equal((await third.done).status, 200);
  assert.equal(server.accepted, 1, 'the idle connection was reused');
  pool.close();
  await until('the connection slot to be given back', () => breaker.connections.count === 0);
});

test('HTTP/1.1: requests waiting for their connection count as pending; over maxPendingRequests they are refused', async () => {
  const silent = await silentServer();
  const breaker = new CircuitBreaker({ maxPendingRequests: 1 });
  const pool = new H1Pool({
    connect: () => ({ socket: tls.connect({ host: '127.0.0.1', port: silent.port, rejectUnauthorized: false }), event: 'secureConnect' }),
    connectTimeoutMs: 10_000,
    idleTimeoutMs: 10_000,
    poolIdleMs: 10_000,
    slots: breaker,
  });
  closers.push(() => pool.close());
  const first = collect();
  pool.request(get('a'), first.sink);
  assert.equal(breaker.pending.count, 1);
  const second = collect();
  pool.request(get('a'), second.sink);
  const refused = await second.done;
  assert.equal(refused.error?.code, 'circuit-open');
  assert.match(refused.error?.message ?? '', /^circuit-open: max-pending-requests/);
  assert.equal(breaker.connections.count, 1, 'the refused request gave its connection slot back');
  await until('the connection to be accepted', () => silent.open === 1);
  silent.dropAll();
  assert.equal((await first.done).error?.code, 'connect-failed');
  await until('both slots to be given back', () => breaker.pending.count === 0 && breaker.connections.count === 0);
});

test('HTTP/2: streams opened while the session connects are pending (limited); sessions count as connections', async () => {
  const silent = await silentServer();
  const breaker = new CircuitBreaker({ maxPendingRequests: 2, maxConnections: 1 });
  const stuck = new H2Client({
    url: `https://127.0.0.1:${silent.port}`,
    createConnection: () => tls.connect({ host: '127.0.0.1', port: silent.port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }),
    connectTimeoutMs: 10_000,
    idleTimeoutMs: 10_000,
    slots: breaker,
  });
  closers.push(() => stuck.close());
  const waiting = [collect(), collect()];
  for (const w of waiting) stuck.request(get('a'), w.sink);
  assert.equal(breaker.pending.count, 2);
  const third = collect();
  stuck.request(get('a'), third.sink);
  assert.match((await third.done).error?.message ?? '', /^circuit-open: max-pending-requests/);

  // Another endpoint's client of the same destination cannot open a second connection.
  const h2c = http2.createServer((_req, res) => res.end('ok'));
  const port = await new Promise<number>((r) => h2c.listen(0, '127.0.0.1', () => r((h2c.address() as AddressInfo).port)));
  closers.push(() => h2c.close());
  const other = new H2Client({ url: `http://127.0.0.1:${port}`, connectTimeoutMs: 2000, idleTimeoutMs: 10_000, slots: breaker });
  closers.push(() => other.close());
  const refused = collect();
  other.request(get('b'), refused.sink);
  assert.match((await refused.done).error?.message ?? '', /^circuit-open: max-connections/);

  await until('the connection to be accepted', () => silent.open === 1);
  silent.dropAll();
  for (const w of waiting) assert.notEqual((await w.done).error, null);
  await until('the stuck session to give its slots back', () => breaker.pending.count === 0 && breaker.connections.count === 0);
  const served = collect();
  other.request(get('b'), served.sink);
  assert.equal((await served.done).status, 200);
  assert.equal(breaker.connections.count, 1);
});
