// mTLS between sidecars and the PeerAuthentication modes, end to end: the caller checks that the answering sidecar is
// the destination service (a sidecar of web cannot answer as api), sessions are not resumed, STRICT refuses plain
// text before a byte reaches the app, PERMISSIVE serves HTTP/1.1 and h2c plain text without an identity, and the
// inbound connection metric tells the two apart.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import tls from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { metric, request } from '../helpers/http.js';
import { meshClientTls, parseResponses, rawExchange, sleep, targetOf } from '../helpers/raw-http.js';
import { portOf, startSidecar, startTwoSidecars, type SidecarProcess, type TwoSidecars } from '../helpers/sidecars.js';

const WEB = 'spiffe://mycel.local/ns/default/svc/web';
const PLAIN_GET = 'GET /hello HTTP/1.1\r\nHost: api\r\nx-mycel-peer-identity: spiffe://mycel.local/ns/default/svc/admin\r\nConnection: close\r\n\r\n';

async function configVersion(admin: string): Promise<number> {
  return (JSON.parse((await request(admin, { path: '/config' })).body.toString()) as { version: number }).version;
}

/** Rewrites a sidecar's config file and waits until the sidecar has applied it. */
async function reconfigure(admin: string, file: string, yaml: string): Promise<void> {
  const version = await configVersion(admin);
  await writeFile(file, yaml);
  for (let i = 0; i < 100 && (await configVersion(admin)) === version; i++) await sleep(50);
  assert.notEqual(await configVersion(admin), version, 'the sidecar applied the new config');
}

function h2cGet(addr: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${addr}`);
    session.on('error', reject);
    // A refused connection may close without an error event.
    session.on('close', () => reject(new Error('the session closed without an answer')));
    const req = session.request({ ':path': path, ':authority': 'api' });
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => {
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        session.close();
        resolve({ status: Number(h[':status']), body });
      });
    });
    req.on('error', (err) => {
      session.destroy();
      reject(err);
    });
    req.end();
  });
}

describe('mTLS between sidecars (STRICT, the default)', () => {
  let app: TestApp;
  let impostorApp: TestApp;
  let mesh: TwoSidecars;
  let impostor: SidecarProcess | undefined;

  before(async () => {
    app = await startHttpApp();
    impostorApp = await startHttpApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http' });
  });
  after(async () => {
    await impostor?.stop('SIGKILL');
    await mesh?.close();
    await app?.close();
    await impostorApp?.close();
  });

  test('plain text (HTTP/1.1 and h2c) is refused before any byte reaches the app, and counted', async () => {
    const seen = app.seen.length;
    const h1 = await rawExchange(targetOf(mesh.api.inbound), PLAIN_GET);
    assert.equal(parseResponses(h1.data).length, 0, 'no HTTP answer to plain text');
    assert.ok(h1.closed);
    await assert.rejects(h2cGet(mesh.api.inbound, '/hello'));
    await sleep(50);
    assert.equal(app.seen.length, seen);
    assert.ok((await metric(mesh.api.admin, 'mycel_inbound_handshake_errors_total', { reason: 'plaintext' })) >= 2);
    assert.equal(await metric(mesh.api.admin, 'mycel_inbound_connections_total', { mode: 'plaintext' }), 0);
  });

  test('mTLS requests are counted with mode="mtls" and carry the verified identity', async () => {
    const r = await request(mesh.apiBinding, { path: '/hello', headers: { 'x-mycel-peer-identity': 'spiffe://mycel.local/ns/default/svc/admin' } });
    assert.equal(r.status, 200);
    assert.equal(app.seen[app.seen.length - 1]!.headers['x-mycel-peer-identity'], WEB);
    assert.ok((await metric(mesh.api.admin, 'mycel_inbound_connections_total', { mode: 'mtls' })) >= 1);
  });

  test('a TLS session is never resumed: every connection proves its client certificate again', async (t) => {
    const opts = { ...(await meshClientTls(mesh.dir, 'web')), host: '127.0.0.1', port: portOf(mesh.api.inbound) };
    const connect = (session?: Buffer) =>
      new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
        let got: Buffer | undefined;
        let reused = true;
        const s = tls.connect({ ...opts, ...(session ? { session } : {}) });
        s.on('session', (b: Buffer) => (got = b));
        s.on('error', reject);
        s.on('secureConnect', () => {
          reused = s.isSessionReused();
          s.write('GET /hello HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n');
        });
        s.resume();
        s.on('close', () => resolve({ reused, session: got }));
      });
    const first = await connect();
    assert.equal(first.reused, false);
    // TLS 1.3 servers may still send a NewSessionTicket; with SSL_OP_NO_TICKET and no session cache it cannot resume.
    if (first.session !== undefined) {
      const second = await connect(first.session);
      assert.equal(second.reused, false, 'the server did not resume the session');
    } else {
      t.diagnostic('the server sent no session ticket at all');
    }
  });

  test('a sidecar of web cannot answer as api: the caller checks the SPIFFE ID of the destination', async () => {
    // A real sidecar of web, with web's valid certificate from the mesh CA, in front of an app of its own.
    impostor = await startSidecar({ dir: mesh.dir, service: 'web', appPort: impostorApp.port, configFiles: [mesh.webConfig] });
    await reconfigure(mesh.web.admin, mesh.webConfig, mesh.meshYaml([{ address: '127.0.0.1', port: portOf(impostor.inbound) }]));
    const r = await request(mesh.apiBinding, { path: '/hello' });
    assert.equal(r.status, 502, r.body.toString());
    assert.equal(r.headers['x-mycel-error'], 'peer-identity-mismatch');
    assert.match(r.body.toString(), /expected spiffe:\/\/mycel\.local\/ns\/default\/svc\/api.*svc\/web/);
    await sleep(50);
    assert.equal(impostorApp.seen.length, 0, 'the impostor got no request');
  });
});

describe('PeerAuthentication PERMISSIVE', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  const permissive = (mode: 'PERMISSIVE' | 'STRICT') => `apiVersion: mycel.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: api-mtls }
spec: { targetRef: { kind: Service, name: api }, mtls: { mode: ${mode} } }
---
apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: open-or-web }
spec:
  targetRef: { kind: Service, name: api }
  rules:
  - to: [ { operation: { paths: [ /open/* ] } } ]
  - from: [ { source: { principals: [ ${WEB} ] } } ]
`;

  before(async () => {
    app = await startHttpApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http', extraWebDocs: permissive('PERMISSIVE') });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  test('plain HTTP/1.1 is served without an identity; a forged identity field is dropped', async () => {
    const r = await rawExchange(targetOf(mesh.api.inbound), PLAIN_GET.replace('/hello', '/open/hello'));
    assert.equal(parseResponses(r.data)[0]?.status, 200);
    const seen = app.seen[app.seen.length - 1]!;
    assert.equal(seen.url, '/open/hello');
    assert.equal(seen.headers['x-mycel-peer-identity'], undefined);
  });

  test('h2c prior knowledge is served too', async () => {
    const r = await h2cGet(mesh.api.inbound, '/open/h2c');
    assert.equal(r.status, 200);
    assert.equal(app.seen[app.seen.length - 1]!.url, '/open/h2c');
  });

  test('authorization sees no identity for plain text: only rules without sources match it', async () => {
    const seen = app.seen.length;
    const r = await rawExchange(targetOf(mesh.api.inbound), PLAIN_GET);
    const res = parseResponses(r.data)[0];
    assert.equal(res?.status, 403);
    assert.equal(res?.headers['x-mycel-error'], 'denied-by default/open-or-web');
    await sleep(50);
    assert.equal(app.seen.length, seen);
    assert.equal(await metric(mesh.api.admin, 'mycel_authz_denied_total', { destination_service: 'api', source_service: 'unknown' }), 1);
  });

  test('mTLS still works and carries the identity; the metric tells plain text from mTLS', async () => {
    const r = await request(mesh.apiBinding, { path: '/hello' });
    assert.equal(r.status, 200);
    assert.equal(app.seen[app.seen.length - 1]!.headers['x-mycel-peer-identity'], WEB);
    assert.ok((await metric(mesh.api.admin, 'mycel_inbound_connections_total', { mode: 'plaintext' })) >= 3);
    assert.ok((await metric(mesh.api.admin, 'mycel_inbound_connections_total', { mode: 'mtls' })) >= 1);
  });

  test('plain text that is not HTTP gets no tunnel to the app', async () => {
    const seen = app.seen.length;
    const r = await rawExchange(targetOf(mesh.api.inbound), 'SSH-2.0-OpenSSH_9.2\r\n');
    assert.equal(r.data.length, 0);
    assert.ok(r.closed);
    assert.equal(app.seen.length, seen);
  });

  test('switching to STRICT live refuses plain text from then on', async () => {
    await reconfigure(mesh.api.admin, mesh.apiConfig, mesh.meshYaml([]).replace(permissive('PERMISSIVE'), permissive('STRICT')));
    const seen = app.seen.length;
    const r = await rawExchange(targetOf(mesh.api.inbound), PLAIN_GET.replace('/hello', '/open/hello'));
    assert.equal(parseResponses(r.data).length, 0);
    await sleep(50);
    assert.equal(app.seen.length, seen);
    assert.equal((await request(mesh.apiBinding, { path: '/open/x' })).status, 200);
  });
});
