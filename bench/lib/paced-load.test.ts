import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { makeCerts, mtlsServerOptions, spiffeIdFor } from './certs.js';
import { pacedLoad } from './paced-load.js';

test('paced load sends at the rate, records only the measured window, and counts answers by x-instance', async () => {
  let served = 0;
  const server = http.createServer((req, res) => {
    served++;
    req.resume();
    res.writeHead(200, { 'x-instance': served % 2 === 0 ? 'even' : 'odd' });
    res.end('ok');
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  try {
    const r = await pacedLoad(port, { authority: 'api', path: '/', rate: 200, warmupS: 0.2, seconds: 0.5 });
    assert.equal(served, 140, 'every request due in 0.7 s at 200/s was sent and answered');
    assert.ok(r.ok >= 90 && r.ok <= 101, `measured ${r.ok} of about 100`);
    assert.equal(r.errors, 0);
    assert.equal((r.byInstance.even ?? 0) + (r.byInstance.odd ?? 0), r.ok);
    assert.ok(r.p50Ms !== null && r.p99Ms !== null && r.p50Ms <= r.p99Ms);
  } finally {
    server.close();
  }
});

test('paced load over mTLS: keep-alive connections with the client certificate, the measured window announced once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mycel-paced-tls-'));
  const certs = await makeCerts(dir);
  const peers = new Set<string>();
  let connections = 0;
  const server = https.createServer(mtlsServerOptions(certs, 'api'), (req, res) => {
    peers.add(String((req.socket as TLSSocket).getPeerCertificate().subjectaltname));
    req.resume();
    res.end('ok');
  });
  server.on('secureConnection', () => connections++);
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  let starts = 0;
  try {
    const tls = { cert: certs.leaves.web.cert, key: certs.leaves.web.key, ca: certs.ca, serverId: spiffeIdFor('api') };
    const r = await pacedLoad(port, { authority: 'api', path: '/', rate: 200, warmupS: 0.2, seconds: 0.3, tls, onMeasureStart: () => starts++ });
    assert.equal(r.errors, 0);
    assert.ok(r.ok >= 50, `measured ${r.ok} of about 60`);
    assert.equal(starts, 1);
    assert.deepEqual([...peers], [`URI:${spiffeIdFor('web')}`]);
    assert.ok(connections < 100, `keep-alive: ${connections} connections for 100 requests`);
    // The client refuses a server that is not api.
    const wrong = await pacedLoad(port, { authority: 'api', path: '/', rate: 50, warmupS: 0, seconds: 0.1, tls: { ...tls, serverId: spiffeIdFor('web') } });
    assert.equal(wrong.ok, 0);
    assert.ok(wrong.errors > 0);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
