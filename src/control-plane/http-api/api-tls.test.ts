// The control plane's API over TLS, against a real replica (file store in a temp dir): its certificate, ALPN, the TLS
// versions, how clients verify it (roots, a pinned fingerprint), and who a client certificate makes the caller.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { STREAM_PATH, STREAM_PROTOCOL } from '../../api/v1alpha1/stream-messages.js';
import { splitPinnedToken } from '../../api/v1alpha1/join-token.js';
import { silentLogger } from '../../core/log.js';
import { newKeyAndCsr } from '../../security/workload-key.js';
import { ControlTrust } from '../../security/control-trust.js';
import { ControlPlane } from '../control-plane.js';
import { FileStore } from '../store/file-store.js';

describe('the API over TLS', () => {
  let dir: string;
  let cp: ControlPlane;
  let roots: string;
  let trust: ControlTrust;
  let admin: string;

  const handshake = (o: tls.ConnectionOptions): Promise<tls.TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: cp.address.port, ...o }, () => resolve(s));
      s.on('error', reject);
    });

  /** A workload certificate for `service` (join token, then the issuance API), as a sidecar gets it. */
  const workload = async (service: string): Promise<{ cert: string; key: string }> => {
    const res = await trust.fetch(`${cp.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ service }) });
    const { token } = splitPinnedToken(((await res.json()) as { token: string }).token);
    const fresh = await newKeyAndCsr();
    const issued = await trust.fetch(`${cp.url}/api/v1/certificates`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ csr: fresh.csrPem }) });
    assert.equal(issued.status, 200);
    return { cert: ((await issued.json()) as { certChain: string }).certChain, key: fresh.keyPem };
  };

  /** Status of a config stream opened with a client certificate and no Authorization header, and the first line. */
  const stream = (client: { cert: string; key: string }, service: string): Promise<{ status: number; first: string }> =>
    new Promise((resolve, reject) => {
      const session = http2.connect(cp.url, { ca: roots, ...client });
      session.on('error', reject);
      const s = session.request({ ':method': 'POST', ':path': STREAM_PATH, 'content-type': 'application/x-ndjson' });
      let status = 0;
      let body = '';
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('data', (d: Buffer) => {
        body += d.toString();
        if (body.includes('\n')) {
          resolve({ status, first: body.slice(0, body.indexOf('\n')) });
          session.destroy();
        }
      });
      s.on('end', () => {
        resolve({ status, first: body });
        session.destroy();
      });
      s.on('error', () => {});
      // The hello registers an endpoint too: it must land (or not) under the hello's service.
      s.write(JSON.stringify({ type: 'hello', protocol: STREAM_PROTOCOL, proxyId: `t-${service}`, service, namespace: 'default', endpoint: { address: '127.0.0.1', port: 40000 + service.length, labels: {} }, subscribe: [] }) + '\n');
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-api-tls-'));
    const store = new FileStore(join(dir, 'store'));
    cp = await ControlPlane.start({ store, listen: { host: '127.0.0.1', port: 0 }, stateDir: join(dir, 'state'), expireRestored: true, log: silentLogger, advertiseUrl: 'https://cp.example.test:7400' });
    roots = await readFile(join(dir, 'state', 'ca.pem'), 'utf8');
    trust = new ControlTrust({ caPem: roots });
    admin = cp.adminToken();
  });

  after(async () => {
    trust?.close();
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('serves a certificate of the mesh CA for the control plane\'s identity and its host names, over h2 and http/1.1', async () => {
    assert.match(cp.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    for (const alpn of ['h2', 'http/1.1']) {
      const s = await handshake({ ca: roots, servername: 'localhost', ALPNProtocols: [alpn] });
      assert.equal(s.alpnProtocol, alpn);
      const cert = new X509Certificate(s.getPeerCertificate().raw);
      s.destroy();
      assert.match(cert.subjectAltName ?? '', /URI:spiffe:\/\/mycel\.local\/ns\/mycel-system\/svc\/control-plane/);
      assert.match(cert.subjectAltName ?? '', /DNS:localhost/);
      assert.match(cert.subjectAltName ?? '', /DNS:cp\.example\.test/);
      assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    }
    const h1 = await trust.fetch(`${cp.url}/healthz`);
    assert.equal(h1.status, 200);
  });

  test('the certificate\'s expiry is a gauge and is in the CA status (for mycel check), the same as the one served', async () => {
    const s = await handshake({ ca: roots, servername: 'localhost' });
    const notAfter = Date.parse(new X509Certificate(s.getPeerCertificate().raw).validTo);
    s.destroy();
    const metrics = await (await trust.fetch(`${cp.url}/metrics`)).text();
    const gauge = /^mycel_control_api_cert_expiry_timestamp_seconds (\d+)$/m.exec(metrics);
    assert.ok(gauge !== null, 'the gauge is exported');
    assert.equal(Number(gauge[1]), Math.floor(notAfter / 1000));
    const status = (await (await trust.fetch(`${cp.url}/api/v1/ca`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { apiCertificates: Array<{ replica: string; url: string; notAfter: number; issuedAt: number }> };
    assert.equal(status.apiCertificates.length, 1);
    const [mine] = status.apiCertificates;
    assert.equal(Math.floor(mine!.notAfter / 1000), Math.floor(notAfter / 1000));
    assert.ok(mine!.issuedAt <= Date.now() && mine!.issuedAt > mine!.notAfter - 86_400_000, 'issued within the certificate\'s lifetime');
  });

  test('refuses TLS 1.1 and clients that do not know the mesh root', async () => {
    await assert.rejects(handshake({ ca: roots, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
    await assert.rejects(handshake({}), /self.signed|unable to get local issuer/);
    const s = await handshake({ ca: roots, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    assert.equal(s.getProtocol(), 'TLSv1.2');
    s.destroy();
  });

  test('a join token pins the active root; a client with only the pin verifies the control plane', async () => {
    const res = await trust.fetch(`${cp.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ service: 'web' }) });
    const { token, rootFingerprint } = splitPinnedToken(((await res.json()) as { token: string }).token);
    assert.match(token, /^mycel-join\./);
    assert.ok(rootFingerprint !== undefined);
    const pinned = new ControlTrust({ rootFingerprint });
    await pinned.bootstrap(cp.url);
    assert.equal((await pinned.fetch(`${cp.url}/readyz`)).status, 200);
    pinned.close();
    const wrong = new ControlTrust({ rootFingerprint: 'ab'.repeat(32) });
    await assert.rejects(wrong.bootstrap(cp.url), /offers no root with fingerprint abababababababab/);
    wrong.close();
  });

  test('no join token for the reserved namespace mycel-system', async () => {
    const res = await trust.fetch(`${cp.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ service: 'control-plane', namespace: 'mycel-system' }) });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: string }).error, 'reserved-namespace');
  });

  test('an admin client certificate is an admin; without it or a token the API answers 401', async () => {
    assert.equal((await trust.fetch(`${cp.url}/api/v1/resources`)).status, 401);
    const fresh = await newKeyAndCsr();
    const res = await trust.fetch(`${cp.url}/api/v1/ca/admin-certificates`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ csr: fresh.csrPem }) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { certChain: string; spiffeId: string };
    assert.equal(body.spiffeId, 'spiffe://mycel.local/ns/mycel-system/sa/admin');
    const asAdmin = new ControlTrust({ caPem: roots });
    asAdmin.setClientCertificate(body.certChain, fresh.keyPem);
    assert.equal((await asAdmin.fetch(`${cp.url}/api/v1/resources`)).status, 200);
    const apply = await asAdmin.fetch(`${cp.url}/api/v1/apply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resources: [], dryRun: true }) });
    assert.equal(apply.status, 200);
    asAdmin.close();
  });

  test('a workload certificate opens its own config stream only, and no admin call', async () => {
    const web = await workload('web');
    const own = await stream(web, 'web');
    assert.equal(own.status, 200);
    assert.doesNotMatch(own.first, /"type":"error"/);
    const other = await stream(web, 'api');
    assert.match(other.first, /"type":"error","code":"forbidden".*service default\/web, not default\/api/);
    // Web's own hello registered web's endpoint (bounded wait: registration is asynchronous) ...
    let webListed: unknown[] = [];
    for (let i = 0; i < 100 && webListed.length === 0; i++) {
      const r = await trust.fetch(`${cp.url}/api/v1/endpoints/default/web`, { headers: { authorization: `Bearer ${admin}` } });
      webListed = r.status === 200 ? ((await r.json()) as { items: unknown[] }).items : [];
      if (webListed.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(webListed.length, 1);
    // ... and nothing was registered for api by web's certificate.
    const apiEndpoints = await trust.fetch(`${cp.url}/api/v1/endpoints/default/api`, { headers: { authorization: `Bearer ${admin}` } });
    const listed = apiEndpoints.status === 200 ? ((await apiEndpoints.json()) as { items: unknown[] }).items : [];
    assert.deepEqual(listed, []);
    const asWeb = new ControlTrust({ caPem: roots });
    asWeb.setClientCertificate(web.cert, web.key);
    const resources = await asWeb.fetch(`${cp.url}/api/v1/resources`);
    assert.equal(resources.status, 403);
    const endpoints = await asWeb.fetch(`${cp.url}/api/v1/endpoints/default/api`);
    assert.equal(endpoints.status, 403, 'another service\'s view');
    asWeb.close();
  });
});
