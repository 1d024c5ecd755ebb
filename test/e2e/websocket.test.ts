// WebSocket end to end: a `ws` client -> web sidecar (Host routing and an upstream binding) -> mTLS -> api sidecar ->
// `ws` server; messages of every kind and size, pings, server pushes, close codes both ways, and a refused handshake.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closedPort } from '../helpers/http.js';
import type http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startWsApp, type WsApp } from '../helpers/ws-app.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let nextId = 0;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** A message queue over a client socket, so a test can await "the next message" without losing any. */
class Client {
  readonly ws: WebSocket;
  readonly id = `c${++nextId}`;
  private readonly queue: Array<{ data: Buffer; isBinary: boolean }> = [];
  private waiter: (() => void) | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(addr: string, path: string, host: string | undefined, opts: { protocols?: string[]; deflate?: boolean } = {}) {
    const sep = path.includes('?') ? '&' : '?';
    this.ws = new WebSocket(`ws://${addr}${path}${sep}id=${this.id}`, opts.protocols ?? [], {
      headers: host ? { host } : {},
      maxPayload: 64 * 1024 * 1024,
      perMessageDeflate: opts.deflate ?? false,
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.queue.push({ data, isBinary });
      this.waiter?.();
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  open(): Promise<void> {
    return withTimeout(
      new Promise<void>((resolve, reject) => {
        this.ws.once('open', () => resolve());
        this.ws.once('error', reject);
      }),
      10_000,
      'websocket open',
    );
  }

  async next(ms = 10_000): Promise<{ data: Buffer; isBinary: boolean }> {
    while (this.queue.length === 0) await withTimeout(new Promise<void>((r) => (this.waiter = r)), ms, 'next websocket message');
    this.waiter = null;
    return this.queue.shift()!;
  }
}

for (const transport of ['h1', 'h2'] as const) describe(`WebSocket through two sidecars (api port declared http, HTTP/1.1 carried as ${transport} between them)`, () => {
  let app: WsApp;
  let mesh: TwoSidecars;

  before(async () => {
    app = await startWsApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http', transportHttp1: transport });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  const entries: Array<{ name: string; addr: () => string; host: string | undefined }> = [
    { name: 'outbound listener, Host: api', addr: () => mesh.web.outbound, host: 'api' },
    { name: 'upstream binding', addr: () => mesh.apiBinding, host: undefined },
  ];

  for (const entry of entries) {
    describe(`via the ${entry.name}`, () => {
      const connect = async (path: string, opts: { protocols?: string[]; deflate?: boolean } = {}) => {
        const c = new Client(entry.addr(), path, entry.host, opts);
        await c.open();
        return c;
      };

      test('text and binary messages keep their type and content both ways', async () => {
        const c = await connect('/echo');
        c.ws.send('hello text ünïcødé');
        const t = await c.next();
        assert.equal(t.isBinary, false);
        assert.equal(t.data.toString(), 'hello text ünïcødé');
        const bin = Buffer.from([0, 255, 1, 254, 0x0d, 0x0a, 0]);
        c.ws.send(bin);
        const b = await c.next();
        assert.equal(b.isBinary, true);
        assert.deepEqual(b.data, bin);
        if (entry.host) assert.equal(app.headersOf(c.id)?.host, 'api');
        c.ws.close(1000);
        await c.closed;
      });

      test('the handshake negotiates a subprotocol and permessage-deflate end to end (compressed frames pass intact)', async () => {
        const c = await connect('/echo', { protocols: ['chat.v2', 'chat.v1'], deflate: true });
        assert.equal(c.ws.protocol, 'chat.v2');
        assert.match(c.ws.extensions, /permessage-deflate/);
        assert.deepEqual(app.headersOf(c.id)?.['sec-websocket-protocol']?.split(/\s*,\s*/), ['chat.v2', 'chat.v1'], 'the offer reached the app in order');
        const text = 'compress me '.repeat(10_000);
        c.ws.send(text);
        const m = await c.next();
        assert.equal(m.data.toString(), text);
        c.ws.close(1000);
        await c.closed;
      });

      test('2000 messages sent back to back all come back in order', async () => {
        const c = await connect('/echo');
        for (let i = 0; i < 2000; i++) c.ws.send(i % 2 === 0 ? `msg ${i}` : Buffer.from(`bin ${i}`));
        for (let i = 0; i < 2000; i++) {
          const m = await c.next();
          assert.equal(m.isBinary, i % 2 === 1);
          assert.equal(m.data.toString(), i % 2 === 0 ? `msg ${i}` : `bin ${i}`);
        }
        c.ws.close(1000);
        await c.closed;
      });

      test('a 5 MiB binary message passes intact both ways', async () => {
        const c = await connect('/echo');
        const big = randomBytes(5 * 1024 * 1024);
        c.ws.send(big);
        const m = await c.next(60_000);
        assert.equal(m.isBinary, true);
        assert.equal(m.data.length, big.length);
        assert.equal(sha(m.data), sha(big));
        c.ws.close(1000);
        await c.closed;
      });

      test('ping/pong: the client pings and gets its payload back; a server ping is answered by the client', async () => {
        const c = await connect('/echo');
        const pong = new Promise<Buffer>((r) => c.ws.once('pong', r));
        c.ws.ping(Buffer.from('client-ping'));
        assert.equal((await withTimeout(pong, 10_000, 'pong')).toString(), 'client-ping');
        const serverPing = new Promise<Buffer>((r) => c.ws.once('ping', r));
        c.ws.send('ping-me');
        assert.equal((await withTimeout(serverPing, 10_000, 'server ping')).toString(), 'server-ping');
        assert.equal((await c.next()).data.toString(), 'got-pong:server-ping');
        c.ws.close(1000);
        await c.closed;
      });

      test('server-initiated messages arrive without the client sending anything, and its close code 4002 reaches the client', async () => {
        const c = await connect('/push');
        assert.deepEqual(await c.next(), { data: Buffer.from('server-hello-1'), isBinary: false });
        assert.deepEqual(await c.next(), { data: Buffer.from([1, 2, 3]), isBinary: true });
        assert.deepEqual(await c.next(), { data: Buffer.from('server-hello-3'), isBinary: false });
        assert.deepEqual(await withTimeout(c.closed, 10_000, 'client close event'), { code: 4002, reason: 'server-done' });
      });

      test('the client closes with 4001 "bye" and the server sees that code and reason', async () => {
        const c = await connect('/echo');
        c.ws.close(4001, 'bye');
        assert.deepEqual(await withTimeout(app.closeOf(c.id), 10_000, 'server close event'), { code: 4001, reason: 'bye' });
        assert.deepEqual(await withTimeout(c.closed, 10_000, 'client close event'), { code: 4001, reason: 'bye' });
      });

      test('a refused handshake (401 from the app) reaches the client as an unexpected 401 response', async () => {
        const c = new Client(entry.addr(), '/reject', entry.host);
        const res = await withTimeout(
          new Promise<{ status: number; auth: string | undefined; upgraded: boolean }>((resolve, reject) => {
            c.ws.on('unexpected-response', (_req: http.ClientRequest, r: http.IncomingMessage) => {
              resolve({ status: r.statusCode ?? 0, auth: r.headers['www-authenticate'], upgraded: false });
              r.resume();
              c.ws.terminate();
            });
            c.ws.on('open', () => resolve({ status: 101, auth: undefined, upgraded: true }));
            c.ws.on('error', (err) => reject(err));
          }),
          10_000,
          'handshake answer',
        );
        assert.deepEqual(res, { status: 401, auth: 'Bearer realm="test"', upgraded: false });
        assert.equal(app.headersOf(c.id), undefined, 'no connection was opened on the server');
      });
    });
  }
});

describe('WebSocket when the app behind api is down', () => {
  let mesh: TwoSidecars;

  before(async () => {
    const port = await closedPort();
    mesh = await startTwoSidecars({ apiAppPort: port, apiProtocol: 'http' });
  });
  after(async () => {
    await mesh?.close();
  });

  test('the handshake is answered by the mesh with 503 and x-mycel-error: connect-failed', async () => {
    const c = new Client(mesh.web.outbound, '/echo', 'api');
    const res = await withTimeout(
      new Promise<{ status: number; error: string | undefined }>((resolve, reject) => {
        c.ws.on('unexpected-response', (_req: http.ClientRequest, r: http.IncomingMessage) => {
          resolve({ status: r.statusCode ?? 0, error: r.headers['x-mycel-error'] as string | undefined });
          r.resume();
          c.ws.terminate();
        });
        c.ws.on('open', () => reject(new Error('the handshake succeeded with no app')));
        c.ws.on('error', (err) => reject(err));
      }),
      15_000,
      'handshake answer',
    );
    assert.deepEqual(res, { status: 503, error: 'connect-failed' });
  });
});
