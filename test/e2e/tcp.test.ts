// Opaque TCP end to end: a raw socket client -> web sidecar's upstream binding -> mTLS tunnel -> api sidecar -> app;
// byte-exact streams both ways, half-close, server-speaks-first, real redis, and protocol detection on undeclared ports.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { startHttpApp, startTcpEcho, type TestApp } from '../helpers/apps.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';
import { eventually } from '../helpers/control.js';
import { have, request, requirePackage, run, sha256, closedPort } from '../helpers/http.js';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** A raw TCP client that collects everything it receives and lets a test await a byte count, a string, or EOF. */
class RawClient {
  readonly socket: net.Socket;
  private chunks: Buffer[] = [];
  received = 0;
  ended = false;
  private readonly waiters = new Set<() => void>();
  readonly connected: Promise<void>;
  readonly closed: Promise<void>;

  constructor(addr: string) {
    const i = addr.lastIndexOf(':');
    this.socket = net.connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)), allowHalfOpen: true });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.on('error', () => {});
    this.socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.received += d.length;
      this.wake();
    });
    this.socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.socket.on('close', () => this.wake());
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  data(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Resolves once `cond` holds (checked after every event); rejects when the socket closes first or on timeout. */
  until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
    if (cond()) return Promise.resolve();
    return withTimeout(
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (cond()) {
            this.waiters.delete(check);
            resolve();
          } else if (this.socket.destroyed) {
            this.waiters.delete(check);
            reject(new Error(`socket closed before: ${what} (got ${this.received} bytes: ${JSON.stringify(this.data().subarray(0, 200).toString('latin1'))})`));
          }
        };
        this.waiters.add(check);
      }),
      ms,
      what,
    );
  }

  untilBytes(n: number, ms?: number): Promise<void> {
    return this.until(() => this.received >= n, `${n} bytes received`, ms);
  }

  untilEnd(ms?: number): Promise<void> {
    return this.until(() => this.ended, 'EOF from the server', ms);
  }
}

/** Writes `buf` in pieces with backpressure, then optionally half-closes. */
async function writeAll(s: net.Socket, buf: Buffer, piece = 64 * 1024): Promise<void> {
  for (let i = 0; i < buf.length; i += piece) {
    if (!s.write(buf.subarray(i, i + piece))) await new Promise<void>((r) => s.once('drain', () => r()));
  }
}

/** A TCP app that counts what it gets and, only after the client's FIN, answers with a summary and closes. */
async function startHalfCloseApp(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => {
      const all = Buffer.concat(parts);
      // Send a large tail after the client's FIN, so it proves the reverse direction stays open for a while.
      s.write(`after-fin bytes=${all.length} sha256=${sha256(all)}\n`);
      s.end(Buffer.alloc(1024 * 1024, 0x5a));
    });
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}


const BANNER = '220 mycel-test ESMTP ready\r\n';

describe('TCP through two sidecars (api port declared tcp)', () => {
  let echo: TestApp & { connections: number };
  let mesh: TwoSidecars;

  before(async () => {
    echo = await startTcpEcho();
    mesh = await startTwoSidecars({ apiAppPort: echo.port, apiProtocol: 'tcp' });
  });
  after(async () => {
    await mesh?.close();
    await echo?.close();
  });

  test('a line protocol: 5000 lines come back exactly, in order', async () => {
    const c = new RawClient(mesh.apiBinding);
    await c.connected;
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i} ${'x'.repeat(i % 50)}`);
    const text = lines.join('\n') + '\n';
    await writeAll(c.socket, Buffer.from(text), 1000);
    await c.untilBytes(Buffer.byteLength(text));
    assert.deepEqual(c.data().toString().split('\n').slice(0, -1), lines);
    c.socket.end();
    await c.untilEnd();
  });

  test('10 MiB of random bytes go both ways intact (sha256)', async () => {
    const c = new RawClient(mesh.apiBinding);
    await c.connected;
    const payload = randomBytes(10 * 1024 * 1024);
    await writeAll(c.socket, payload);
    c.socket.end();
    await c.untilEnd(60_000);
    assert.equal(c.received, payload.length);
    assert.equal(sha256(c.data()), sha256(payload));
    // Both sidecars count the tunnel and its bytes once it closed (the earlier test's bytes add to the same series).
    const counted = async (admin: string, direction: string) => {
      const text = (await request(admin, { path: '/metrics' })).body.toString();
      const value = (name: string) => Number(new RegExp(`^${name}\\{direction="${direction}",source_service="web",destination_service="api"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      return { opened: value('mycel_tcp_connections_opened_total'), closed: value('mycel_tcp_connections_closed_total'), sent: value('mycel_tcp_sent_bytes_total'), received: value('mycel_tcp_received_bytes_total') };
    };
    for (const [admin, direction] of [[mesh.web.admin, 'outbound'], [mesh.api.admin, 'inbound']] as const) {
      const m = await eventually(`${direction} tunnels counted as closed`, async () => {
        const c = await counted(admin, direction);
        return c.closed === c.opened && c.sent >= payload.length ? c : undefined;
      });
      assert.ok(m.opened >= 2 && m.received >= payload.length, `${direction}: ${JSON.stringify(m)}`);
    }
  });

  test('a server-speaks-first protocol: the banner arrives before the client sends a byte', async () => {
    const bannerApp = await startTcpEcho(BANNER);
    const m = await startTwoSidecars({ apiAppPort: bannerApp.port, apiProtocol: 'tcp' });
    try {
      const c = new RawClient(m.apiBinding);
      await c.connected;
      await c.untilBytes(BANNER.length, 10_000);
      assert.equal(c.data().toString(), BANNER);
      c.socket.write('EHLO client\r\n');
      await c.untilBytes(BANNER.length + 'EHLO client\r\n'.length);
      assert.equal(c.data().toString(), BANNER + 'EHLO client\r\n');
      c.socket.end();
      await c.untilEnd();
    } finally {
      await m.close();
      await bannerApp.close();
    }
  });
});

describe('TCP when the app behind api is down', () => {
  let mesh: TwoSidecars;

  before(async () => {
    mesh = await startTwoSidecars({ apiAppPort: await closedPort(), apiProtocol: 'tcp' });
  });
  after(async () => {
    await mesh?.close();
  });

  test('the mesh ends the client connection (EOF or close) instead of leaving it hanging, and makes up no data', async () => {
    const c = new RawClient(mesh.apiBinding);
    await c.connected;
    c.socket.write('hello?\n');
    await withTimeout(Promise.race([c.closed, new Promise<void>((r) => c.socket.once('end', () => r()))]), 15_000, 'the mesh ending the client connection');
    assert.equal(c.received, 0);
    c.socket.destroy();
  });
});

describe('TCP half-close through two sidecars', () => {
  let app: { port: number; close(): Promise<void> };
  let mesh: TwoSidecars;

  before(async () => {
    app = await startHalfCloseApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'tcp' });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  test('the client ends its side and still receives everything the app sends after seeing that FIN', async () => {
    const c = new RawClient(mesh.apiBinding);
    await c.connected;
    const payload = randomBytes(300_000);
    await writeAll(c.socket, payload);
    c.socket.end();
    await c.untilEnd(30_000);
    const text = c.data().toString('latin1');
    const head = `after-fin bytes=${payload.length} sha256=${sha256(payload)}\n`;
    assert.equal(text.slice(0, head.length), head, 'the app saw the whole upload and then the FIN');
    assert.equal(c.received, head.length + 1024 * 1024, 'the 1 MiB tail sent after the FIN arrived in full');
  });
});

describe('redis through a TCP binding', () => {
  let redis: ChildProcess | null = null;
  let redisPort = 0;
  let mesh: TwoSidecars | null = null;

  before(async () => {
    if (!(await have('redis-server'))) return;
    redisPort = await closedPort();
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = redis;
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        let out = '';
        proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (out.includes('Ready to accept connections')) resolve();
        });
        proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
      }),
      15_000,
      'redis-server ready',
    );
    mesh = await startTwoSidecars({ apiAppPort: redisPort, apiProtocol: 'tcp' });
  });
  after(async () => {
    await mesh?.close();
    if (redis && redis.exitCode === null) {
      const exited = new Promise((r) => redis!.once('exit', r));
      redis.kill('SIGTERM');
      await exited;
    }
  });

  test('redis-cli SET, GET and INCR through the binding', async (t) => {
    if (!(await requirePackage(t, 'redis-server', 'redis-server'))) return;
    const [host, port] = mesh!.apiBinding.split(':') as [string, string];
    const cli = (...args: string[]) => run('redis-cli', ['-h', host, '-p', port, ...args], undefined, 15_000);
    assert.equal((await cli('SET', 'mycel:key', 'value through the mesh')).stdout.trim(), 'OK');
    assert.equal((await cli('GET', 'mycel:key')).stdout.trim(), 'value through the mesh');
    assert.equal((await cli('INCR', 'mycel:counter')).stdout.trim(), '1');
    assert.equal((await cli('INCR', 'mycel:counter')).stdout.trim(), '2');
    const direct = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(redisPort), 'GET', 'mycel:key']);
    assert.equal(direct.stdout.trim(), 'value through the mesh', 'the write landed in the real redis');
  });

  test('a pipeline of 1000 RESP commands in one write gets 1000 replies in order', async (t) => {
    if (!(await requirePackage(t, 'redis-server', 'redis-server'))) return;
    const c = new RawClient(mesh!.apiBinding);
    await c.connected;
    let cmds = '*2\r\n$3\r\nDEL\r\n$10\r\nmycel:pipe\r\n';
    for (let i = 0; i < 1000; i++) cmds += '*2\r\n$4\r\nINCR\r\n$10\r\nmycel:pipe\r\n';
    c.socket.write(cmds);
    const expected = ':0\r\n' + Array.from({ length: 1000 }, (_, i) => `:${i + 1}\r\n`).join('');
    // DEL answers :0 or :1 depending on earlier runs; the key is fresh in this redis, so :0.
    await c.untilBytes(Buffer.byteLength(expected));
    assert.equal(c.data().toString(), expected);
    c.socket.end();
    await c.untilEnd();
  });

  test('redis-cli --pipe mass insert of 2000 SETs reports no errors', async (t) => {
    if (!(await requirePackage(t, 'redis-server', 'redis-server'))) return;
    const [host, port] = mesh!.apiBinding.split(':') as [string, string];
    let input = '';
    for (let i = 0; i < 2000; i++) input += `*3\r\n$3\r\nSET\r\n$${`mass:${i}`.length}\r\nmass:${i}\r\n$${String(i).length}\r\n${i}\r\n`;
    const r = await run('redis-cli', ['-h', host, '-p', port, '--pipe'], input, 30_000);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /errors: 0, replies: 2000/);
    const get = await run('redis-cli', ['-h', host, '-p', port, 'GET', 'mass:1999']);
    assert.equal(get.stdout.trim(), '1999');
  });
});

describe('TCP on an undeclared port (protocol detection)', () => {
  let bannerApp: TestApp;
  let httpApp: TestApp;
  let bannerMesh: TwoSidecars;
  let httpMesh: TwoSidecars;

  before(async () => {
    bannerApp = await startTcpEcho(BANNER);
    httpApp = await startHttpApp();
    bannerMesh = await startTwoSidecars({ apiAppPort: bannerApp.port, apiProtocol: undefined });
    httpMesh = await startTwoSidecars({ apiAppPort: httpApp.port, apiProtocol: undefined });
  });
  after(async () => {
    await bannerMesh?.close();
    await httpMesh?.close();
    await bannerApp?.close();
    await httpApp?.close();
  });

  test('a server-speaks-first app works: a silent client gets the banner once detection gives up (TCP)', async () => {
    const c = new RawClient(bannerMesh.apiBinding);
    await c.connected;
    await c.untilBytes(BANNER.length, 10_000);
    assert.equal(c.data().toString(), BANNER);
    c.socket.write('QUIT\r\n');
    await c.untilBytes(BANNER.length + 6);
    assert.equal(c.data().toString(), BANNER + 'QUIT\r\n');
    c.socket.end();
    await c.untilEnd();
  });

  test('a client that speaks first in a binary protocol is tunnelled as TCP with its first bytes intact', async () => {
    const c = new RawClient(bannerMesh.apiBinding);
    await c.connected;
    const first = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00]);
    c.socket.write(first);
    await c.untilBytes(BANNER.length + first.length);
    assert.deepEqual(c.data(), Buffer.concat([Buffer.from(BANNER), first]));
    c.socket.end();
    await c.untilEnd();
  });

  test('plain HTTP on the same kind of undeclared binding is detected as HTTP (the app sees the mesh identity)', async () => {
    const r = await request(httpMesh.apiBinding, { path: '/headers' });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web', 'handled as HTTP by both sidecars, not tunnelled');
    const h = await request(httpMesh.apiBinding, { path: '/hello?detected=1' });
    assert.equal(h.body.toString(), 'hello GET /hello?detected=1\n');
  });
});
