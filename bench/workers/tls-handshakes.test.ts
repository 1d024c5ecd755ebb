// The handshake load worker against real servers: a TLS 1.3 server that requires a client certificate of the bench
// CA (and checks its SPIFFE ID), and a plain TCP server; each answers one HTTP/1.1 request and closes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls, { type TLSSocket } from 'node:tls';
import { makeCerts, mtlsServerOptions, spiffeIdFor, type Certs } from '../lib/certs.js';
import { preloadWorkers, runWorker } from '../lib/loadgen.js';

import type { HandshakeWorkerResult as Result } from './tls-handshakes.js';

let dir: string;
let certs: Certs;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mycel-tls-handshakes-'));
  certs = await makeCerts(dir);
  preloadWorkers(['tls-handshakes']);
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Answers 200 to the first request bytes and closes, as a server does for `Connection: close`. */
function answerOnce(socket: net.Socket): void {
  socket.on('error', () => undefined);
  socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  return (server.address() as AddressInfo).port;
}

const close = (server: Server): Promise<void> => new Promise((res) => server.close(() => res()));

test('TLS mode: new connections with a client certificate the server verifies, one request each', async () => {
  const peers = new Set<string>();
  let handshakes = 0;
  const server = tls.createServer({ ...mtlsServerOptions(certs, 'api'), minVersion: 'TLSv1.3' }, (socket: TLSSocket) => {
    handshakes++;
    if (socket.isSessionReused()) peers.add('resumed');
    peers.add(String(socket.getPeerCertificate().subjectaltname));
    answerOnce(socket);
  });
  const port = await listen(server);
  try {
    const r = await runWorker<Result>('tls-handshakes', {
      TARGET_PORT: String(port), CONNECTIONS: '2', DURATION_MS: '300',
      CERT: certs.leaves.web.cert, KEY: certs.leaves.web.key, CA: certs.ca, SERVER_ID: spiffeIdFor('api'),
    }, { cpu: null, timeoutMs: 30_000 });
    assert.equal(r.errors, 0, r.firstError);
    assert.ok(r.ok > 0);
    assert.equal(r.latenciesUs.length, r.ok);
    assert.equal(handshakes, r.ok, 'one handshake per request');
    assert.deepEqual([...peers], [`URI:${spiffeIdFor('web')}`], 'every connection presented web\'s certificate, none resumed');
    assert.ok(r.cpuSeconds > 0 && r.seconds >= 0.3);
  } finally {
    await close(server);
  }
});

test('TLS mode: a server with another identity than SERVER_ID is counted as failed', async () => {
  const server = tls.createServer(mtlsServerOptions(certs, 'web'), answerOnce);
  const port = await listen(server);
  try {
    const r = await runWorker<Result>('tls-handshakes', {
      TARGET_PORT: String(port), CONNECTIONS: '1', DURATION_MS: '100',
      CERT: certs.leaves.web.cert, KEY: certs.leaves.web.key, CA: certs.ca, SERVER_ID: spiffeIdFor('api'),
    }, { cpu: null, timeoutMs: 30_000 });
    assert.equal(r.ok, 0);
    assert.ok(r.errors > 0);
    assert.match(r.firstError ?? '', /server identity is not/);
  } finally {
    await close(server);
  }
});

test('plain mode (no CERT): new TCP connections, one request each', async () => {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    answerOnce(socket);
  });
  const port = await listen(server);
  try {
    const r = await runWorker<Result>('tls-handshakes', { TARGET_PORT: String(port), CONNECTIONS: '2', DURATION_MS: '200' }, { cpu: null, timeoutMs: 30_000 });
    assert.equal(r.errors, 0, r.firstError);
    assert.ok(r.ok > 0);
    assert.equal(connections, r.ok);
  } finally {
    await close(server);
  }
});
