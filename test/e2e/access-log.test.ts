// Access logs through real sidecars: with MeshConfig telemetry.accessLog enabled each sidecar writes one JSON line per
// request (and one per TCP tunnel) on its stdout, outbound at the caller and inbound (with the caller's verified
// identity) at the callee.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startHttpApp, startTcpEcho, type TestApp } from '../helpers/apps.js';
import { eventually } from '../helpers/control.js';
import { request } from '../helpers/http.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';

let app: TestApp;
let mesh: TwoSidecars;

before(async () => {
  app = await startHttpApp();
  mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http', meshSpec: 'telemetry: { accessLog: { enabled: true } }' });
});
after(async () => {
  await mesh?.close();
  await app?.close();
});

const lines = (out: string) => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

test('one JSON line per request on each side, with the outcome and the identities', async () => {
  assert.equal((await request(mesh.apiBinding, { path: '/hello?from=test' })).status, 200);
  const out = await eventually('the outbound line', async () => lines(mesh.web.stdout()).find((l) => l.path === '/hello?from=test'));
  assert.equal(out.direction, 'outbound');
  assert.equal(out.source, 'web');
  assert.equal(out.destination, 'api');
  assert.equal(out.status, 200);
  assert.equal(out.method, 'GET');
  assert.equal(out.error, null);
  assert.equal(typeof out.duration_ms, 'number');
  const inbound = await eventually('the inbound line', async () => lines(mesh.api.stdout()).find((l) => l.path === '/hello?from=test'));
  assert.equal(inbound.direction, 'inbound');
  assert.equal(inbound.peer_identity, 'spiffe://mycel.local/ns/default/svc/web');
  assert.equal(inbound.status, 200);
});

test('a failure the mesh made is logged with its reason', async () => {
  const r = await request(mesh.web.outbound, { path: '/x', headers: { host: 'nosuch' } });
  assert.equal(r.status, 502);
  const line = await eventually('the failure line', async () => lines(mesh.web.stdout()).find((l) => l.authority === 'nosuch'));
  assert.equal(line.error, 'unknown-service');
  assert.equal(line.status, 502);
});

describe('TCP tunnels', () => {
  let echo: TestApp;
  let tcp: TwoSidecars;
  before(async () => {
    echo = await startTcpEcho();
    tcp = await startTwoSidecars({ apiAppPort: echo.port, apiProtocol: 'tcp', meshSpec: 'telemetry: { accessLog: { enabled: true } }' });
  });
  after(async () => {
    await tcp?.close();
    await echo?.close();
  });

  test('one line per tunnel on each side, with the bytes each way', async () => {
    const [host, port] = [tcp.apiBinding.slice(0, tcp.apiBinding.lastIndexOf(':')), Number(tcp.apiBinding.slice(tcp.apiBinding.lastIndexOf(':') + 1))];
    const sock = net.connect({ host, port });
    let got = 0;
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 11) sock.end();
    });
    sock.write('hello tcp!\n');
    await new Promise<void>((r) => sock.once('close', () => r()));
    const out = await eventually('the outbound tunnel line', async () => lines(tcp.web.stdout()).find((l) => l.kind === 'tcp'));
    assert.deepEqual([out.direction, out.source, out.destination, out.sent_bytes, out.received_bytes, out.error], ['outbound', 'web', 'api', 11, 11, null]);
    assert.equal(typeof out.duration_ms, 'number');
    const inbound = await eventually('the inbound tunnel line', async () => lines(tcp.api.stdout()).find((l) => l.kind === 'tcp'));
    assert.deepEqual([inbound.direction, inbound.source, inbound.destination, inbound.sent_bytes, inbound.received_bytes], ['inbound', 'web', 'api', 11, 11]);
  });
});
