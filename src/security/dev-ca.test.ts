// Tests of the development CA: certificate contents parsed by node:crypto, real TLS 1.3 mutual authentication
// with SPIFFE identities on loopback, and the files written for sidecars (modes, CA reuse, errors).

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { DevCertsError, createDevCa, issueWorkloadCert, loadDevCa, writeDevCertificates } from './dev-ca.js';
import type { CaMaterial, WorkloadCert } from './dev-ca.js';
import { spiffeIdFromPeerCertificate, spiffeIdFromX509 } from './spiffe.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-dev-ca-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function fileMode(s: { mode: number }): number {
  return s.mode & 0o777;
}

test('createDevCa makes a self-signed P-256 root limited to signing certificates', async () => {
  const ca = await createDevCa({ commonName: 'Test, CA=evil' });
  const cert = new X509Certificate(ca.certPem);
  assert.equal(cert.ca, true);
  assert.equal(cert.checkIssued(cert), true);
  assert.equal(cert.verify(cert.publicKey), true);
  // The comma stays inside the one CN value instead of creating a second attribute.
  assert.equal(cert.subject, 'O=Mycel development\nCN=Test\\, CA=evil');
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(cert.checkPrivateKey(createPrivateKey(ca.keyPem)), true);
  assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);

  const parsed = new x509.X509Certificate(ca.certPem);
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  assert.ok(bc);
  assert.equal(bc.critical, true);
  assert.equal(bc.ca, true);
  assert.equal(bc.pathLength, 0);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  assert.ok(ku);
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.ok(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
});

test('issueWorkloadCert makes an X.509 SVID: one URI SAN, server+client EKU, not a CA, signed by the CA', async () => {
  const ca = await createDevCa();
  const caCert = new X509Certificate(ca.certPem);
  const leaf = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web' });
  const cert = new X509Certificate(leaf.certPem);

  assert.equal(leaf.spiffeId, 'spiffe://mycel.local/ns/default/svc/web');
  assert.equal(cert.subjectAltName, 'URI:spiffe://mycel.local/ns/default/svc/web');
  assert.equal(spiffeIdFromX509(cert), leaf.spiffeId);
  assert.deepEqual([...cert.keyUsage].sort(), [SERVER_AUTH, CLIENT_AUTH]);
  assert.equal(cert.ca, false);
  assert.ok(!cert.subject, 'empty subject: the identity is the SAN alone');
  assert.equal(cert.checkIssued(caCert), true);
  assert.equal(cert.verify(caCert.publicKey), true);
  assert.equal(cert.checkPrivateKey(createPrivateKey(leaf.keyPem)), true);
  assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.match(leaf.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);

  const parsed = new x509.X509Certificate(leaf.certPem);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  assert.ok(ku);
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  assert.ok(bc);
  assert.equal(bc.ca, false);
  assert.equal(parsed.getExtension(x509.SubjectAlternativeNameExtension)?.critical, true);
  const caKeyId = new x509.X509Certificate(ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  assert.ok(caKeyId);
  assert.equal(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, caKeyId);

  // Serial: 16 random bytes, positive (no leading sign byte needed), different per certificate.
  assert.match(cert.serialNumber, /^[0-7][0-9A-F]{31}$/);
  assert.equal(cert.serialNumber.toLowerCase(), leaf.serialNumber);
  const other = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web' });
  assert.notEqual(other.serialNumber, leaf.serialNumber);

  // A certificate from another CA does not verify against this one.
  const stranger = new X509Certificate((await issueWorkloadCert(await createDevCa(), { trustDomain: 'mycel.local', service: 'web' })).certPem);
  assert.equal(stranger.checkIssued(caCert), false);
  assert.equal(stranger.verify(caCert.publicKey), false);
});

test('the validity window starts backdated for clock skew and lasts the lifetime from now', async () => {
  const ca = await createDevCa();
  const now = new Date('2030-01-02T03:04:05.678Z');
  // A CA valid at that date: the clock is injected, never waited for.
  const futureCa = await createDevCa({ now: new Date('2030-01-01T00:00:00Z') });
  const leaf = await issueWorkloadCert(futureCa, { trustDomain: 'mycel.local', namespace: 'shop', service: 'cart', lifetimeSeconds: 3600, backdateSeconds: 120, now });
  const cert = new X509Certificate(leaf.certPem);
  assert.equal(new Date(cert.validFrom).toISOString(), '2030-01-02T03:02:05.000Z');
  assert.equal(new Date(cert.validTo).toISOString(), '2030-01-02T04:04:05.000Z');
  assert.deepEqual([leaf.notBefore, leaf.notAfter], [new Date(cert.validFrom), new Date(cert.validTo)]);
  assert.equal(leaf.spiffeId, 'spiffe://mycel.local/ns/shop/svc/cart');

  // Defaults: 300 s back, 24 h ahead of the real clock.
  const before = Math.floor(Date.now() / 1000) * 1000;
  const d = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web' });
  const after = Date.now();
  const from = new Date(new X509Certificate(d.certPem).validFrom).getTime();
  const to = new Date(new X509Certificate(d.certPem).validTo).getTime();
  assert.ok(from >= before - 300_000 && from <= after - 300_000, `notBefore ${from} backdated by 300 s`);
  assert.equal(to - from, 86_400_000 + 300_000);
});

test('issueWorkloadCert refuses names that are no DNS labels and lifetimes beyond the CA', async () => {
  const ca = await createDevCa({ lifetimeSeconds: 3600 });
  for (const service of ['Web', '', 'a_b', '-web', 'a.b', 'x'.repeat(64)]) {
    await assert.rejects(issueWorkloadCert(ca, { trustDomain: 'mycel.local', service }), (err: unknown) => err instanceof DevCertsError && err.usage, service);
  }
  await assert.rejects(issueWorkloadCert(ca, { trustDomain: 'Mycel.Local', service: 'web' }), (err: unknown) => err instanceof DevCertsError && err.usage);
  await assert.rejects(issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web', lifetimeSeconds: 0 }), DevCertsError);
  await assert.rejects(issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web', lifetimeSeconds: 7200 }), /valid until/);
});

test('loadDevCa accepts a CA key in SEC1 form and refuses a key that is not the CA\'s', async () => {
  const ca = await createDevCa();
  const sec1 = createPrivateKey(ca.keyPem).export({ type: 'sec1', format: 'pem' }) as string;
  const loaded = await loadDevCa(ca.certPem, sec1);
  const leaf = await issueWorkloadCert(loaded, { trustDomain: 'mycel.local', service: 'web' });
  assert.equal(new X509Certificate(leaf.certPem).verify(new X509Certificate(ca.certPem).publicKey), true);

  const other = await createDevCa();
  await assert.rejects(loadDevCa(ca.certPem, other.keyPem), /does not belong/);
  const leafAsCa: CaMaterial = { certPem: leaf.certPem, keyPem: leaf.keyPem };
  await assert.rejects(issueWorkloadCert(leafAsCa, { trustDomain: 'mycel.local', service: 'x' }), /not a CA certificate/);
});

interface Side {
  cert: WorkloadCert;
  caPem: string;
}

function listen(server: tls.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function mtlsServer(side: Side): tls.Server {
  return tls.createServer({
    cert: side.cert.certPem,
    key: side.cert.keyPem,
    ca: side.caPem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
}

function connect(side: Side, port: number, expectedServerId: string): tls.TLSSocket {
  return tls.connect({
    host: '127.0.0.1',
    port,
    cert: side.cert.certPem,
    key: side.cert.keyPem,
    ca: side.caPem,
    minVersion: 'TLSv1.3',
    // Mesh peers are named by SPIFFE ID, not by host name: check that instead of DNS/IP SANs.
    checkServerIdentity: (_host, cert) =>
      spiffeIdFromPeerCertificate(cert) === expectedServerId ? undefined : new Error(`server is ${spiffeIdFromPeerCertificate(cert)}, not ${expectedServerId}`),
  });
}

test('two workload certificates authenticate each other over TLS 1.3 and each side reads the other\'s SPIFFE ID', async (t) => {
  const ca = await createDevCa();
  const api: Side = { cert: await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'api' }), caPem: ca.certPem };
  const web: Side = { cert: await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web' }), caPem: ca.certPem };

  const server = mtlsServer(api);
  t.after(() => server.close());
  const seen: Array<{ peer: string | undefined; authorized: boolean; protocol: string | null }> = [];
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const peer = spiffeIdFromPeerCertificate(socket.getPeerCertificate());
    seen.push({ peer, authorized: socket.authorized, protocol: socket.getProtocol() });
    socket.end(`hello ${peer}`);
  });
  const port = await listen(server);

  const client = connect(web, port, api.cert.spiffeId);
  await once(client, 'secureConnect');
  assert.equal(client.authorized, true);
  assert.equal(client.getProtocol(), 'TLSv1.3');
  assert.equal(spiffeIdFromPeerCertificate(client.getPeerCertificate()), 'spiffe://mycel.local/ns/default/svc/api');
  let reply = '';
  client.setEncoding('utf8');
  client.on('data', (chunk: string) => { reply += chunk; });
  await once(client, 'end');
  client.destroy();

  assert.equal(reply, 'hello spiffe://mycel.local/ns/default/svc/web');
  assert.deepEqual(seen, [{ peer: 'spiffe://mycel.local/ns/default/svc/web', authorized: true, protocol: 'TLSv1.3' }]);
});

/** Connects and waits until the connection is over: whether the handshake completed, and the error the client saw. */
function attempt(side: Side, port: number, expectedServerId: string): Promise<{ secure: boolean; data: number; error: Error | undefined }> {
  return new Promise((resolve) => {
    const client = connect(side, port, expectedServerId);
    const result: { secure: boolean; data: number; error: Error | undefined } = { secure: false, data: 0, error: undefined };
    client.on('secureConnect', () => { result.secure = true; });
    client.on('data', (chunk: Buffer) => { result.data += chunk.length; });
    client.on('error', (err) => { result.error = err; });
    client.on('close', () => resolve(result));
  });
}

test('the server refuses a client certificate from a different dev CA', async (t) => {
  const ca = await createDevCa();
  const otherCa = await createDevCa();
  const api: Side = { cert: await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'api' }), caPem: ca.certPem };
  // The intruder trusts the real CA (so it accepts the server) but holds a certificate of its own CA.
  const intruder: Side = { cert: await issueWorkloadCert(otherCa, { trustDomain: 'mycel.local', service: 'web' }), caPem: ca.certPem };

  const server = mtlsServer(api);
  t.after(() => server.close());
  let accepted = 0;
  server.on('secureConnection', (socket: tls.TLSSocket) => { accepted++; socket.end('should not get here'); });
  const port = await listen(server);

  const refused = once(server, 'tlsClientError');
  const client = await attempt(intruder, port, api.cert.spiffeId);
  const [, socket] = (await refused) as [Error, tls.TLSSocket];
  assert.equal(socket.authorized, false);
  assert.equal(socket.authorizationError, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  assert.equal(accepted, 0, 'no connection reaches the application');
  // In TLS 1.3 the client finishes its side before the server judges its certificate; Node's server then
  // closes without an alert, so the client sees a connection that ends before any byte arrives.
  assert.equal(client.data, 0);
});

test('the client refuses a server of another CA, of another identity, or with an expired certificate', async (t) => {
  const ca = await createDevCa();
  const web: Side = { cert: await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web' }), caPem: ca.certPem };
  const cases: Array<[string, Side, string, RegExp]> = [
    ['another CA', { cert: await issueWorkloadCert(await createDevCa(), { trustDomain: 'mycel.local', service: 'api' }), caPem: ca.certPem }, 'spiffe://mycel.local/ns/default/svc/api', /UNABLE_TO_VERIFY|unable to verify|local issuer/i],
    ['another identity', { cert: await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'admin' }), caPem: ca.certPem }, 'spiffe://mycel.local/ns/default/svc/api', /server is spiffe:\/\/mycel.local\/ns\/default\/svc\/admin/],
    [
      'expired',
      { cert: await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'api', lifetimeSeconds: 60, backdateSeconds: 0, now: new Date(Date.now() - 3_600_000) }), caPem: ca.certPem },
      'spiffe://mycel.local/ns/default/svc/api',
      /expired/i,
    ],
  ];
  for (const [why, serverSide, expected, pattern] of cases) {
    const server = mtlsServer(serverSide);
    t.after(() => server.close());
    server.on('tlsClientError', () => {});
    const port = await listen(server);
    const { error: err, data } = await attempt(web, port, expected);
    assert.ok(err, why);
    assert.equal(data, 0, why);
    assert.match(`${(err as NodeJS.ErrnoException).code} ${err.message}`, pattern, why);
  }
});

test('writeDevCertificates writes the CA and one certificate and key per service, keys 0600', async (t) => {
  const base = await tempDir(t);
  const dir = join(base, 'nested', 'certs');
  const out = await writeDevCertificates(dir, { services: ['web', 'api'] });

  assert.equal(out.caCreated, true);
  assert.equal(out.dir, dir);
  assert.deepEqual(out.written, [out.caKeyPath, out.caCertPath, join(dir, 'web.key'), join(dir, 'web.crt'), join(dir, 'api.key'), join(dir, 'api.crt')]);
  assert.deepEqual((await readdir(dir)).sort(), ['api.crt', 'api.key', 'ca.crt', 'ca.key', 'web.crt', 'web.key']);
  assert.equal(fileMode(await stat(dir)), 0o700 & ~process.umask());
  for (const key of ['ca.key', 'web.key', 'api.key']) assert.equal(fileMode(await stat(join(dir, key))), 0o600, key);
  for (const crt of ['ca.crt', 'web.crt', 'api.crt']) assert.equal(fileMode(await stat(join(dir, crt))) & 0o077 & ~0o044, 0, `${crt} writable only by its owner`);

  const caCert = new X509Certificate(await readFile(out.caCertPath));
  for (const w of out.workloads) {
    const cert = new X509Certificate(await readFile(w.certPath));
    assert.equal(spiffeIdFromX509(cert), `spiffe://mycel.local/ns/default/svc/${w.service}`);
    assert.equal(w.spiffeId, spiffeIdFromX509(cert));
    assert.equal(cert.checkIssued(caCert), true);
    assert.equal(cert.verify(caCert.publicKey), true);
    // Node accepts the files as they are for a TLS context.
    tls.createSecureContext({ cert: await readFile(w.certPath), key: await readFile(w.keyPath), ca: await readFile(out.caCertPath) });
  }
});

test('writeDevCertificates reuses the CA already in the directory, so services added later trust the first ones', async (t) => {
  const dir = await tempDir(t);
  const first = await writeDevCertificates(dir, { trustDomain: 'dev.example', namespace: 'shop', services: ['web'] });
  const caBefore = await readFile(first.caCertPath, 'utf8');
  const caKeyBefore = await readFile(first.caKeyPath, 'utf8');

  const second = await writeDevCertificates(dir, { trustDomain: 'dev.example', namespace: 'shop', services: ['cart'], lifetimeSeconds: 7200 });
  assert.equal(second.caCreated, false);
  assert.deepEqual(second.written, [join(dir, 'cart.key'), join(dir, 'cart.crt')]);
  assert.equal(await readFile(second.caCertPath, 'utf8'), caBefore);
  assert.equal(await readFile(second.caKeyPath, 'utf8'), caKeyBefore);
  const caCert = new X509Certificate(caBefore);
  const cart = new X509Certificate(await readFile(join(dir, 'cart.crt')));
  assert.equal(cart.verify(caCert.publicKey), true);
  assert.equal(spiffeIdFromX509(cart), 'spiffe://dev.example/ns/shop/svc/cart');
  assert.equal(second.workloads[0]?.notAfter.getTime(), (second.workloads[0]?.notBefore.getTime() ?? 0) + (7200 + 300) * 1000);
  assert.equal(new X509Certificate(await readFile(join(dir, 'web.crt'))).verify(caCert.publicKey), true);
});

test('a renewed key replaces a world-readable old file with a 0600 one, whatever the umask', async (t) => {
  const dir = await tempDir(t);
  await writeDevCertificates(dir, { services: ['web'] });
  const keyPath = join(dir, 'web.key');
  const oldKey = await readFile(keyPath, 'utf8');
  await chmod(keyPath, 0o644);
  const previous = process.umask(0);
  try {
    await writeDevCertificates(dir, { services: ['web', 'api'] });
  } finally {
    process.umask(previous);
  }
  assert.equal(fileMode(await stat(keyPath)), 0o600);
  assert.equal(fileMode(await stat(join(dir, 'api.key'))), 0o600);
  assert.notEqual(await readFile(keyPath, 'utf8'), oldKey);
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
});

test('writeDevCertificates refuses bad input before writing anything', async (t) => {
  const dir = join(await tempDir(t), 'out');
  const usage = (err: unknown) => err instanceof DevCertsError && err.usage && err.fix.length > 0;
  await assert.rejects(writeDevCertificates(dir, { services: ['web', 'Bad_Name'] }), usage);
  await assert.rejects(writeDevCertificates(dir, { services: ['ca'] }), usage);
  await assert.rejects(writeDevCertificates(dir, { services: [] }), usage);
  await assert.rejects(writeDevCertificates(dir, { services: ['web'], trustDomain: 'Mycel.Local' }), usage);
  await assert.rejects(writeDevCertificates(dir, { services: ['web'], namespace: 'a/b' }), usage);
  await assert.rejects(writeDevCertificates(dir, { services: ['web'], lifetimeSeconds: 1.5 }), usage);
  await assert.rejects(stat(dir), { code: 'ENOENT' });
});

test('writeDevCertificates refuses a half-present or broken CA instead of replacing it', async (t) => {
  const dir = await tempDir(t);
  const runtime = (pattern: RegExp) => (err: unknown) => err instanceof DevCertsError && !err.usage && pattern.test(err.message) && err.fix.length > 0;
  const ca = await createDevCa();
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await assert.rejects(writeDevCertificates(dir, { services: ['web'] }), runtime(/has ca\.crt but no ca\.key/));

  await writeFile(join(dir, 'ca.key'), (await createDevCa()).keyPem, { mode: 0o600 });
  await assert.rejects(writeDevCertificates(dir, { services: ['web'] }), runtime(/does not belong/));
  assert.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), ca.certPem, 'the CA file is untouched');
  assert.deepEqual((await readdir(dir)).sort(), ['ca.crt', 'ca.key']);

  await writeFile(join(dir, 'ca.key'), ca.keyPem, { mode: 0o600 });
  await assert.rejects(writeDevCertificates(dir, { services: ['web'], lifetimeSeconds: 2 * 365 * 86_400 }), runtime(/valid until/));
});

test('writeDevCertificates explains a directory it cannot write', async (t) => {
  const base = await tempDir(t);
  const file = join(base, 'not-a-dir');
  await writeFile(file, '');
  const cannotWrite = (err: unknown) => err instanceof DevCertsError && !err.usage && /could not write/.test(err.message);
  await assert.rejects(writeDevCertificates(join(file, 'certs'), { services: ['web'] }), cannotWrite);
  await assert.rejects(writeDevCertificates(join(file, 'a', 'b'), { services: ['web'] }), cannotWrite);
});

test('an output directory under /proc fails at once instead of hanging in a recursive mkdir', { skip: process.platform !== 'linux', timeout: 10_000 }, async () => {
  // procfs answers ENOENT for any new child, which makes Node's own recursive mkdir retry forever.
  await assert.rejects(writeDevCertificates('/proc/mycel-no-such-dir/certs', { services: ['web'] }), (err: unknown) => err instanceof DevCertsError && /ENOENT/.test(err.message));
});
