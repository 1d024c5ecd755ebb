// The api sidecar's mTLS inbound listener admits only TLS 1.3 clients with a certificate from the mesh CA that
// carries exactly one SPIFFE ID of the mesh's trust domain: plaintext, TLS 1.2, no certificate, a foreign CA, an
// expired certificate, or a certificate without (or with several, or a foreign) SPIFFE IDs all fail, and not one
// byte nor even a connection reaches the app (a recording tap sits in front of it); a proper client works.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueWorkloadCert, loadDevCa, writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';
import { requirePackage, run } from '../helpers/http.js';
import { isAlive, parseResponses, rawExchange, sleep, startTap, targetOf, type Tap } from '../helpers/raw-http.js';
import { issueLeafWithSans } from '../helpers/tls-certs.js';

const REQUEST = 'GET /hello?tls HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n';

interface Attempt {
  /** The client finished its side of the handshake. */
  secureConnected: boolean;
  /** Bytes received after the handshake (an HTTP response would show here). */
  data: Buffer;
  error: string | null;
  closed: boolean;
  alpn: string | false | null;
}

describe('hostile TLS clients on the mTLS inbound listener', () => {
  let app: TestApp;
  let tap: Tap;
  let mesh: TwoSidecars;
  let foreignDir: string;
  let ca: { cert: Buffer; key: Buffer };
  let web: { cert: Buffer; key: Buffer };
  let host: string;
  let port: number;

  before(async () => {
    app = await startHttpApp();
    tap = await startTap(app.port);
    mesh = await startTwoSidecars({ apiAppPort: tap.port, apiProtocol: 'http', meshSpec: 'timeouts: { connect: 1s }' });
    foreignDir = await mkdtemp(join(tmpdir(), 'mycel-foreign-ca-'));
    // Another CA issuing a certificate with the very same SPIFFE ID as web's.
    await writeDevCertificates(foreignDir, { services: ['web'] });
    ca = { cert: await readFile(join(mesh.dir, 'ca.crt')), key: await readFile(join(mesh.dir, 'ca.key')) };
    web = { cert: await readFile(join(mesh.dir, 'web.crt')), key: await readFile(join(mesh.dir, 'web.key')) };
    ({ host, port } = targetOf(mesh.api.inbound));
  });
  after(async () => {
    await mesh?.close();
    await tap?.close();
    await app?.close();
    if (foreignDir) await rm(foreignDir, { recursive: true, force: true });
  });
  afterEach(() => {
    assert.ok(isAlive(mesh.api.proc.pid!), `the api sidecar is alive; its last log lines:\n${mesh.api.logs.slice(-12).join('\n')}`);
  });

  /** Connects with these TLS options, sends an HTTP request once the handshake is done, collects until close. */
  function attempt(opts: tls.ConnectionOptions, timeoutMs = 5000): Promise<Attempt> {
    return new Promise((resolve) => {
      const s = tls.connect({ host, port, ca: ca.cert, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'], ...opts });
      const out: Attempt = { secureConnected: false, data: Buffer.alloc(0), error: null, closed: false, alpn: null };
      const chunks: Buffer[] = [];
      const done = () => {
        clearTimeout(timer);
        out.data = Buffer.concat(chunks);
        s.destroy();
        resolve(out);
      };
      const timer = setTimeout(done, timeoutMs);
      s.on('secureConnect', () => {
        out.secureConnected = true;
        out.alpn = s.alpnProtocol;
        s.write(REQUEST);
      });
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', (err: NodeJS.ErrnoException) => {
        out.error = err.code ?? err.message;
      });
      s.on('close', () => {
        out.closed = true;
        done();
      });
    });
  }

  /** Runs `fn` and asserts that nothing reached the app: no connection, no byte, no request. */
  async function nothingReachesApp<T>(fn: () => Promise<T>): Promise<T> {
    const c0 = tap.connections;
    const b0 = tap.bytesIn;
    const s0 = app.seen.length;
    const r = await fn();
    await sleep(100);
    assert.equal(tap.connections - c0, 0, 'the app got no connection');
    assert.equal(tap.bytesIn - b0, 0, 'the app got no byte');
    assert.equal(app.seen.length - s0, 0, 'the app saw no request');
    return r;
  }

  function assertRefused(a: Attempt, what: string): void {
    assert.equal(parseResponses(a.data).length, 0, `${what}: no HTTP response (got ${JSON.stringify(a.data.toString('latin1').slice(0, 200))})`);
    assert.ok(a.closed, `${what}: the connection is closed`);
    assert.ok(a.error !== null || !a.secureConnected || a.data.length === 0, `${what}: the client saw the refusal`);
  }

  test('baseline: a client with web\'s certificate gets through (HTTP/1.1 and HTTP/2), with its verified identity', async () => {
    const a = await attempt({ cert: web.cert, key: web.key });
    assert.ok(a.secureConnected, `handshake (${a.error})`);
    assert.equal(a.alpn, 'http/1.1');
    const res = parseResponses(a.data);
    assert.equal(res[0]?.status, 200, a.data.toString('latin1'));
    assert.equal(res[0]?.body.toString(), 'hello GET /hello?tls\n');
    const seen = app.seen[app.seen.length - 1]!;
    assert.equal(seen.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web');

    const session = http2.connect(`https://${mesh.api.inbound}`, { ca: ca.cert, cert: web.cert, key: web.key, checkServerIdentity: () => undefined });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        session.on('error', reject);
        const req = session.request({ ':path': '/hello?h2', ':authority': 'api' });
        let b = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => (b += d));
        req.on('end', () => resolve(b));
        req.on('error', reject);
        req.end();
      });
      assert.equal(body, 'hello GET /hello?h2\n');
    } finally {
      session.destroy();
    }
  });

  test('a plaintext HTTP request is refused and nothing reaches the app', async () => {
    const r = await nothingReachesApp(() => rawExchange(targetOf(mesh.api.inbound), REQUEST, { timeoutMs: 5000 }));
    assert.ok(r.closed, `the plaintext connection is closed (after ${r.ms} ms)`);
    assert.ok(!r.data.toString('latin1').startsWith('HTTP/1.1 2'), `no success answer: ${JSON.stringify(r.data.toString('latin1').slice(0, 100))}`);
  });

  test('a plaintext HTTP/2 preface is refused and nothing reaches the app', async () => {
    const r = await nothingReachesApp(() => rawExchange(targetOf(mesh.api.inbound), 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00', { timeoutMs: 5000 }));
    assert.ok(r.closed, 'closed');
  });

  test('a TLS 1.2-only client fails the handshake (node:tls)', async () => {
    const a = await nothingReachesApp(() => attempt({ cert: web.cert, key: web.key, maxVersion: 'TLSv1.2' }));
    assert.equal(a.secureConnected, false, 'no TLS 1.2 session');
    assert.ok(a.error !== null, 'the client got a handshake error');
    assertRefused(a, 'TLS 1.2');
  });

  test('a TLS 1.2-only client fails the handshake (openssl s_client -tls1_2)', async (t) => {
    if (!(await requirePackage(t, 'openssl', 'openssl'))) return;
    const r = await nothingReachesApp(() =>
      run('openssl', ['s_client', '-connect', mesh.api.inbound, '-tls1_2', '-cert', join(mesh.dir, 'web.crt'), '-key', join(mesh.dir, 'web.key'), '-CAfile', join(mesh.dir, 'ca.crt'), '-quiet'], REQUEST, 10_000),
    );
    assert.notEqual(r.code, 0, `openssl failed: ${r.stderr.slice(0, 300)}`);
    assert.ok(!r.stdout.includes('HTTP/1.1'), r.stdout);
  });

  test('a client without a certificate fails', async () => {
    const a = await nothingReachesApp(() => attempt({}));
    assertRefused(a, 'no certificate');
  });

  test('a client with a certificate from another CA (same SPIFFE ID) fails', async () => {
    const cert = await readFile(join(foreignDir, 'web.crt'));
    const key = await readFile(join(foreignDir, 'web.key'));
    const a = await nothingReachesApp(() => attempt({ cert, key }));
    assertRefused(a, 'foreign CA');
  });

  test('a client with an expired certificate from the right CA fails', async () => {
    const devCa = await loadDevCa(ca.cert.toString(), ca.key.toString());
    const old = await issueWorkloadCert(devCa, { trustDomain: 'mycel.local', service: 'web', lifetimeSeconds: 3600, now: new Date(Date.now() - 3 * 86_400_000) });
    const a = await nothingReachesApp(() => attempt({ cert: old.certPem, key: old.keyPem }));
    assertRefused(a, 'expired');
  });

  test('a client with a right-CA certificate of another trust domain fails', async () => {
    const devCa = await loadDevCa(ca.cert.toString(), ca.key.toString());
    const evil = await issueWorkloadCert(devCa, { trustDomain: 'evil.example', service: 'web' });
    const a = await nothingReachesApp(() => attempt({ cert: evil.certPem, key: evil.keyPem }));
    assertRefused(a, 'other trust domain');
    await mesh.api.waitForLog((r) => r.msg === 'refused a peer without a SPIFFE ID of this trust domain' && r.peer === 'spiffe://evil.example/ns/default/svc/web');
  });

  test('a client with a right-CA certificate without any SPIFFE ID (DNS name only) fails', async () => {
    const leaf = await issueLeafWithSans(ca.cert.toString(), ca.key.toString(), [{ type: 'dns', value: 'web' }], 'CN=web');
    const a = await nothingReachesApp(() => attempt({ cert: leaf.certPem, key: leaf.keyPem }));
    assertRefused(a, 'no SPIFFE ID');
    await mesh.api.waitForLog((r) => r.msg === 'refused a peer without a SPIFFE ID of this trust domain' && r.peer === null);
  });

  test('a client with a right-CA certificate carrying two SPIFFE IDs fails', async () => {
    const leaf = await issueLeafWithSans(ca.cert.toString(), ca.key.toString(), [
      { type: 'url', value: 'spiffe://mycel.local/ns/default/svc/web' },
      { type: 'url', value: 'spiffe://mycel.local/ns/default/svc/admin' },
    ]);
    const a = await nothingReachesApp(() => attempt({ cert: leaf.certPem, key: leaf.keyPem }));
    assertRefused(a, 'two SPIFFE IDs');
  });

  for (const bad of ['spiffe://mycel.local/web', 'spiffe://mycel.local/ns/default/svc/web?x=1', 'spiffe://MYCEL.local/ns/default/svc/web', 'https://mycel.local/ns/default/svc/web']) {
    test(`a client with a right-CA certificate whose URI SAN is not a mesh SPIFFE ID (${bad}) fails`, async () => {
      const leaf = await issueLeafWithSans(ca.cert.toString(), ca.key.toString(), [{ type: 'url', value: bad }]);
      const a = await nothingReachesApp(() => attempt({ cert: leaf.certPem, key: leaf.keyPem }));
      assertRefused(a, bad);
    });
  }

  test('a silent TCP connection (no ClientHello) is closed within the handshake timeout', async () => {
    const r = await nothingReachesApp(() => rawExchange(targetOf(mesh.api.inbound), [], { timeoutMs: 6000 }));
    assert.ok(r.closed, `closed (after ${r.ms} ms; the handshake timeout is 1 s)`);
  });

  test('a stalled handshake (half a ClientHello) is closed within the handshake timeout', async () => {
    // A TLS record header announcing 512 bytes of handshake, then only a few of them.
    const partial = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
    const r = await nothingReachesApp(() => rawExchange(targetOf(mesh.api.inbound), partial, { timeoutMs: 6000 }));
    assert.ok(r.closed, `closed (after ${r.ms} ms; the handshake timeout is 1 s)`);
  });

  test('garbage instead of a ClientHello is refused', async () => {
    const r = await nothingReachesApp(() => rawExchange(targetOf(mesh.api.inbound), Buffer.alloc(4096, 0x41), { timeoutMs: 5000 }));
    assert.ok(r.closed, 'closed');
  });

  test('200 failed handshakes in a row leave the listener healthy', async () => {
    const cert = await readFile(join(foreignDir, 'web.crt'));
    const key = await readFile(join(foreignDir, 'web.key'));
    await nothingReachesApp(async () => {
      for (let round = 0; round < 4; round++) {
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => attempt(i % 2 === 0 ? {} : { cert, key })));
        for (const a of results) assertRefused(a, 'bulk');
      }
    });
    const ok = await attempt({ cert: web.cert, key: web.key });
    assert.equal(parseResponses(ok.data)[0]?.status, 200, `a proper client still works (${ok.error})`);
  });

  test('a plain TCP connection to the inbound port gets no tunnel to the app', async () => {
    // Whatever the bytes, without TLS there is no path to the app: an HTTP CONNECT and raw bytes alike.
    await nothingReachesApp(async () => {
      const s = net.connect(port, host);
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.on('error', () => {});
      s.write(`CONNECT 127.0.0.1:${tap.port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      await sleep(500);
      s.destroy();
    });
  });
});
