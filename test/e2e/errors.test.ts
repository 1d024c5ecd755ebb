// Every failure the sidecar makes explains itself: the right 5xx status, `x-mycel-error` naming the reason, a text
// body, and one structured log line; each reason is provoked for real (closed ports, foreign CAs, wrong identities).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import tls from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { portOf, startSidecar, startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';
import { request, closedPort } from '../helpers/http.js';


describe('mesh errors explain themselves', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  let foreign: tls.Server;
  let foreignDir: string;

  before(async () => {
    app = await startHttpApp();
    // A TLS server whose certificate comes from another CA: the web sidecar must refuse it.
    foreignDir = await mkdtemp(join(tmpdir(), 'mycel-foreign-'));
    await writeDevCertificates(foreignDir, { services: ['foreign'] });
    foreign = tls.createServer({ cert: await readFile(join(foreignDir, 'foreign.crt')), key: await readFile(join(foreignDir, 'foreign.key')), ALPNProtocols: ['http/1.1', 'h2'] }, (s) => s.end());
    await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', () => r()));
    const dead = await closedPort();
    mesh = await startTwoSidecars({
      apiAppPort: app.port,
      apiProtocol: 'http',
      meshSpec: 'timeouts: { idle: 1s, connect: 2s }',
      extraWebDocs: `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: empty }
spec: { ports: [ { port: 80, appProtocol: http } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: dead }
spec:
  ports: [ { port: 80, appProtocol: http } ]
  endpoints: [ { address: 127.0.0.1, port: ${dead} } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: foreign }
spec:
  ports: [ { port: 80, appProtocol: http } ]
  endpoints: [ { address: 127.0.0.1, port: ${(foreign.address() as net.AddressInfo).port} } ]
`,
    });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
    foreign?.close();
    await rm(foreignDir, { recursive: true, force: true });
  });

  async function expectError(host: string, path: string, status: number, code: string, method = 'GET') {
    const r = await request(mesh.web.outbound, { method, path, headers: { host } });
    assert.equal(r.status, status, `${host}${path}: ${r.body.toString()}`);
    assert.equal(r.headers['x-mycel-error'], code);
    if (method !== 'HEAD') assert.match(r.body.toString(), new RegExp(`^mycel (web|api): ${code}: `));
    return r;
  }

  async function loggedOnce(side: 'web' | 'api', code: string) {
    const rec = await mesh[side].waitForLog((r) => r.msg === 'request failed' && r.error === code);
    assert.equal(typeof rec.reason, 'string');
    assert.equal(typeof rec.time, 'string');
  }

  test('unknown service: 502 unknown-service', async () => {
    await expectError('no-such-service', '/', 502, 'unknown-service');
    await loggedOnce('web', 'unknown-service');
  });

  test('unknown service port: 502 unknown-service naming the port', async () => {
    const r = await expectError('api:8081', '/', 502, 'unknown-service');
    assert.match(r.body.toString(), /has no port 8081/);
  });

  test('a service without endpoints: 503 no-endpoints', async () => {
    await expectError('empty', '/', 503, 'no-endpoints');
    await loggedOnce('web', 'no-endpoints');
  });

  test('nothing listens at the endpoint: 503 connect-failed', async () => {
    await expectError('dead', '/', 503, 'connect-failed');
    await loggedOnce('web', 'connect-failed');
  });

  test('HEAD errors carry the reason in the header and no body', async () => {
    const r = await expectError('dead', '/', 503, 'connect-failed', 'HEAD');
    assert.equal(r.body.length, 0);
  });

  test('an endpoint with a certificate from another CA: 502 tls-handshake-failed', async () => {
    await expectError('foreign', '/', 502, 'tls-handshake-failed');
    await loggedOnce('web', 'tls-handshake-failed');
  });

  test('an endpoint that is another service (valid cert, wrong SPIFFE ID): 502 peer-identity-mismatch', async () => {
    // Point service "impostor" at the web sidecar's own inbound listener: it presents web's identity, not impostor's.
    const { writeFile } = await import('node:fs/promises');
    const yaml = (await readFile(mesh.webConfig, 'utf8')) + `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: impostor }
spec:
  ports: [ { port: 80, appProtocol: http } ]
  endpoints: [ { address: 127.0.0.1, port: ${portOf(mesh.web.inbound)} } ]
`;
    await writeFile(mesh.webConfig, yaml);
    const deadline = Date.now() + 10_000;
    let r = await request(mesh.web.outbound, { headers: { host: 'impostor' } });
    while (r.headers['x-mycel-error'] === 'unknown-service' && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50)); // waiting for the file watcher to apply the change
      r = await request(mesh.web.outbound, { headers: { host: 'impostor' } });
    }
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-mycel-error'], 'peer-identity-mismatch');
    assert.match(r.body.toString(), /expected spiffe:\/\/mycel\.local\/ns\/default\/svc\/impostor, the peer at .* is spiffe:\/\/mycel\.local\/ns\/default\/svc\/web/);
  });

  test('the app resets the connection: 502 upstream-reset from the server-side sidecar', async () => {
    await expectError('api', '/close', 502, 'upstream-reset');
    await loggedOnce('api', 'upstream-reset');
  });

  test('the app stalls longer than the idle timeout: 504 idle-timeout', async () => {
    await expectError('api', '/slow?ms=3000', 504, 'idle-timeout');
    // Both sidecars run the same idle timeout; whichever fires first answers, and says so in its log.
    const isIdle = (r: Record<string, unknown>) => r.msg === 'request failed' && r.error === 'idle-timeout';
    await Promise.any([mesh.web.waitForLog(isIdle), mesh.api.waitForLog(isIdle)]);
  });

  test('the destination sidecar refuses our client certificate: 502 tls-handshake-failed, not a bare reset', async () => {
    // A second "web" sidecar whose certificate comes from a CA the api sidecar does not trust (it trusts both CAs itself).
    const dir = await mkdtemp(join(tmpdir(), 'mycel-untrusted-'));
    const { writeFile } = await import('node:fs/promises');
    await writeDevCertificates(dir, { services: ['web'] });
    const bundle = (await readFile(join(dir, 'ca.crt'), 'utf8')) + (await readFile(join(mesh.dir, 'ca.crt'), 'utf8'));
    await writeFile(join(dir, 'ca.crt'), bundle);
    const web2 = await startSidecar({ dir, service: 'web', appPort: 1, configFiles: [mesh.webConfig] });
    try {
      const r = await request(web2.outbound, { path: '/hello', headers: { host: 'api' } });
      assert.equal(r.status, 502, r.body.toString());
      assert.equal(r.headers['x-mycel-error'], 'tls-handshake-failed');
      assert.match(r.body.toString(), /refused our client certificate/);
      assert.equal(app.seen.filter((x) => x.url === '/hello' && x.headers['x-mycel-peer-identity'] === undefined).length, 0);
      // The same over the multiplexed HTTP/2 hop (an h2c client).
      const { default: http2 } = await import('node:http2');
      const session = http2.connect(`http://${web2.outbound}`);
      session.on('error', () => {}); // the sidecar is killed below; its reset must not surface here
      const h2 = await new Promise<{ status: number; error: string | undefined }>((resolve, reject) => {
        const st = session.request({ ':path': '/hello', ':authority': 'api' });
        st.on('response', (h) => resolve({ status: Number(h[':status']), error: h['x-mycel-error'] as string | undefined }));
        st.on('error', reject);
        st.resume();
      });
      session.destroy();
      assert.deepEqual(h2, { status: 502, error: 'tls-handshake-failed' });
    } finally {
      await web2.stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a normal request still works after all of that', async () => {
    const r = await request(mesh.web.outbound, { path: '/hello', headers: { host: 'api' } });
    assert.equal(r.status, 200);
  });
});

describe('the app behind the server-side sidecar is down', () => {
  let mesh: TwoSidecars;
  before(async () => {
    mesh = await startTwoSidecars({ apiAppPort: await closedPort(), apiProtocol: 'http' });
  });
  after(async () => mesh?.close());

  test('503 connect-failed, made by the api sidecar and passed through by the web sidecar', async () => {
    const r = await request(mesh.web.outbound, { path: '/', headers: { host: 'api' } });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-mycel-error'], 'connect-failed');
    assert.match(r.body.toString(), /^mycel api: connect-failed/);
    const rec = await mesh.api.waitForLog((x) => x.msg === 'request failed');
    assert.equal(rec.direction, 'inbound');
  });
});
