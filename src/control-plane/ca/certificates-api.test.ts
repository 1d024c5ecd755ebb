// Certificate issuance against a real control plane (file store in a temp dir) over clear-text HTTP: which tokens get a
// certificate and for which identity, renewal by proof, the CA's key files, and the proxy authenticating by certificate.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, KeyObject, sign, webcrypto } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CERT_CHAIN_HEADER, certAuthData } from '../../api/v1alpha1/cert-auth.js';
import { STREAM_PATH, STREAM_PROTOCOL } from '../../api/v1alpha1/stream-messages.js';
import { silentLogger } from '../../core/log.js';
import { createDevCa, issueWorkloadCert } from '../../security/dev-ca.js';
import { splitPems } from '../../security/pem.js';
import { spiffeIdFromX509 } from '../../security/spiffe.js';
import { TokenAuthority, USED_TOKEN_KIND } from '../auth/tokens.js';
import { ControlPlane } from '../control-plane.js';
import { FileStore } from '../store/file-store.js';

x509.cryptoProvider.set(webcrypto);

interface Csr {
  csrPem: string;
  csrDer: Buffer;
  keyPem: string;
}

/** A P-256 key and its CSR, optionally asking for a SAN the CA must ignore. */
async function makeCsr(askFor?: string): Promise<Csr> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    ...(askFor !== undefined ? { name: 'CN=api', extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: askFor }])] } : {}),
  });
  return { csrPem: csr.toString('pem'), csrDer: Buffer.from(csr.rawData), keyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string };
}

interface Answer {
  certChain?: string;
  trustBundle?: string;
  notAfter?: number;
  spiffeId?: string;
  error?: string;
  message?: string;
  reason?: string;
}

describe('certificate issuance', () => {
  let dir: string;
  let store: FileStore;
  let cp: ControlPlane;
  let admin: string;
  let authority: TokenAuthority;

  const post = async (body: unknown, token?: string): Promise<{ status: number; body: Answer }> => {
    const res = await fetch(`${cp.url}/api/v1/certificates`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Answer };
  };
  const token = async (service: string, extra: Record<string, unknown> = {}): Promise<string> => {
    const res = await fetch(`${cp.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ service, ...extra }) });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  };
  /** The status of a config stream opened with these headers (200 when accepted). */
  const streamStatus = (headers: Record<string, string>): Promise<number> =>
    new Promise((resolve, reject) => {
      const session = http2.connect(cp.url);
      session.on('error', reject);
      const s = session.request({ ':method': 'POST', ':path': STREAM_PATH, ...headers });
      s.on('response', (h) => {
        resolve(Number(h[':status']));
        session.destroy();
      });
      s.on('error', () => {});
      s.write(JSON.stringify({ type: 'hello', protocol: STREAM_PROTOCOL, proxyId: 'test-proxy', service: 'web' }) + '\n');
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-ca-api-'));
    store = new FileStore(join(dir, 'store'), { log: silentLogger });
    // Clear text: this file tests issuance and the header proof; the API over TLS is tested in http-api/api-tls.test.ts.
    cp = await ControlPlane.start({ store, listen: { host: '127.0.0.1', port: 0 }, stateDir: null, expireRestored: true, insecureHttp: true, log: silentLogger, ca: { dir: join(dir, 'state') } });
    admin = cp.adminToken();
    authority = await TokenAuthority.fromStore(store);
  });
  after(async () => {
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a join token gets a chain to the trust bundle with the token\'s identity, even when the CSR asks for another', async () => {
    const csr = await makeCsr('spiffe://mycel.local/ns/default/svc/api');
    const r = await post({ csr: csr.csrPem }, await token('web'));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [leafPem, interPem] = splitPems(r.body.certChain ?? '');
    const leaf = new X509Certificate(leafPem as string);
    const inter = new X509Certificate(interPem as string);
    const root = new X509Certificate(splitPems(r.body.trustBundle ?? '')[0] as string);
    assert.equal(spiffeIdFromX509(leaf), 'spiffe://mycel.local/ns/default/svc/web');
    assert.ok(!leaf.subject, 'no subject: the CSR\'s CN=api is ignored too');
    assert.ok(leaf.checkPrivateKey(createPrivateKey(csr.keyPem)), 'the certificate is for the CSR\'s key');
    assert.ok(leaf.verify(inter.publicKey) && inter.verify(root.publicKey), 'leaf -> intermediate -> root');
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'TLS server and client');
    const lifetime = Date.parse(leaf.validTo) - Date.now();
    assert.ok(lifetime > 23 * 3_600_000 && lifetime <= 24 * 3_600_000, `24 h by default (${lifetime} ms)`);
    assert.ok(Date.parse(leaf.validFrom) < Date.now() - 60_000, 'backdated for clock skew');
  });

  test('bad, expired, admin and spent tokens are refused with the reason', async () => {
    const csr = (await makeCsr()).csrPem;
    const good = await token('web');
    const forged = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    let r = await post({ csr }, forged);
    assert.equal(r.status, 401);
    assert.match(r.body.message ?? '', /signature is not valid/);
    r = await post({ csr });
    assert.equal(r.status, 401, 'no token at all');
    const expired = authority.joinToken('default', 'web', { ttlSeconds: 60, now: Date.now() - 120_000 });
    r = await post({ csr }, expired);
    assert.equal(r.status, 401);
    assert.match(r.body.message ?? '', /expired at/);
    r = await post({ csr }, admin);
    assert.equal(r.status, 403, 'the admin token has no workload identity');
    const once = await token('web', { singleUse: true, ttlSeconds: 600 });
    assert.equal((await post({ csr }, once)).status, 200);
    r = await post({ csr }, once);
    assert.equal(r.status, 401);
    assert.equal(r.body.reason, 'used');
    assert.equal(await streamStatus({ authorization: `Bearer ${once}` }), 401, 'a spent token opens no config stream either');
    // The spent record carries the token's expiry, so that the sweep can drop it once the token is refused anyway.
    const spentRecord = store.get(USED_TOKEN_KIND, 'mycel-system', (authority.check(once) as { singleUseId: string }).singleUseId);
    assert.equal((spentRecord?.value as { expiresAt?: number }).expiresAt, (authority.check(once) as { expiresAt: number }).expiresAt);
    // A single-use token made without a TTL still expires (a day), so its record does not stay forever.
    const created = await fetch(`${cp.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ service: 'web', singleUse: true }) });
    const { token: dayToken, expiresAt } = (await created.json()) as { token: string; expiresAt: number };
    assert.ok(Math.abs(expiresAt - (Date.now() + 86_400_000)) < 60_000, `expires in a day, not at ${new Date(expiresAt).toISOString()}`);
    assert.ok(Math.abs((authority.check(dayToken) as { expiresAt: number }).expiresAt - expiresAt) < 2000, 'the expiry is under the token\'s signature');
    r = await post({ csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' }, good);
    assert.equal(r.status, 400);
  });

  test('a token for web opens no config stream for api', async () => {
    const web = await token('web');
    assert.equal(await streamStatus({ authorization: `Bearer ${web}` }), 200, 'its own service');
    const session = http2.connect(cp.url);
    const s = session.request({ ':method': 'POST', ':path': STREAM_PATH, authorization: `Bearer ${web}` });
    s.write(JSON.stringify({ type: 'hello', protocol: STREAM_PROTOCOL, proxyId: 'sneaky', service: 'api' }) + '\n');
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => (text += d));
    await new Promise((r) => s.on('end', r));
    session.destroy();
    assert.match(text, /"code":"forbidden"/);
  });

  test('renewal is proved by the current key; a wrong proof or a foreign chain is refused', async () => {
    const first = await makeCsr();
    const issued = await post({ csr: first.csrPem }, await token('web'));
    assert.equal(issued.status, 200);
    const next = await makeCsr();
    const chain = issued.body.certChain as string;
    let r = await post({ csr: next.csrPem, certChain: chain, proof: sign('sha256', next.csrDer, createPrivateKey(first.keyPem)).toString('base64') });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(spiffeIdFromX509(new X509Certificate(splitPems(r.body.certChain ?? '')[0] as string)), 'spiffe://mycel.local/ns/default/svc/web');
    r = await post({ csr: next.csrPem, certChain: chain, proof: sign('sha256', next.csrDer, createPrivateKey(next.keyPem)).toString('base64') });
    assert.equal(r.status, 401, 'signed by the new key, not the current one');
    assert.equal(r.body.error, 'bad-proof');
    const devCa = await createDevCa();
    const foreign = await issueWorkloadCert(devCa, { trustDomain: 'mycel.local', service: 'api' });
    r = await post({ csr: next.csrPem, certChain: foreign.certPem + devCa.certPem, proof: sign('sha256', next.csrDer, createPrivateKey(foreign.keyPem)).toString('base64') });
    assert.equal(r.status, 401, 'a chain from another CA');
    assert.match(r.body.message ?? '', /does not chain to a current root/);
  });

  test('a proxy authenticates its config stream with its certificate', async () => {
    const csr = await makeCsr();
    const issued = await post({ csr: csr.csrPem }, await token('web', { singleUse: true }));
    const t = Date.now();
    const chain = Buffer.from(issued.body.certChain as string).toString('base64');
    const good = { authorization: `Mycel-Cert ${t}.${sign('sha256', certAuthData(t), createPrivateKey(csr.keyPem)).toString('base64')}`, [CERT_CHAIN_HEADER]: chain };
    assert.equal(await streamStatus(good), 200);
    const stale = t - 3_600_000;
    assert.equal(await streamStatus({ authorization: `Mycel-Cert ${stale}.${sign('sha256', certAuthData(stale), createPrivateKey(csr.keyPem)).toString('base64')}`, [CERT_CHAIN_HEADER]: chain }), 401, 'an old signed time');
    const other = await makeCsr();
    assert.equal(await streamStatus({ authorization: `Mycel-Cert ${t}.${sign('sha256', certAuthData(t), createPrivateKey(other.keyPem)).toString('base64')}`, [CERT_CHAIN_HEADER]: chain }), 401, 'another key');
  });

  test('CA keys are files of mode 0600 and never appear in the API', async () => {
    const caDir = join(dir, 'state', 'ca');
    const names = await readdir(caDir);
    const keys = names.filter((n) => n.endsWith('.key'));
    assert.ok(keys.some((n) => n.startsWith('root-')) && keys.some((n) => n.startsWith('intermediate-')), names.join(', '));
    for (const k of keys) assert.equal((await stat(join(caDir, k))).mode & 0o777, 0o600, k);
    const res = await fetch(`${cp.url}/api/v1/ca`, { headers: { authorization: `Bearer ${admin}` } });
    const text = await res.text();
    assert.equal(res.status, 200);
    assert.doesNotMatch(text, /PRIVATE KEY/);
    const all = await fetch(`${cp.url}/api/v1/resources`, { headers: { authorization: `Bearer ${admin}` } });
    assert.doesNotMatch(await all.text(), /PRIVATE KEY|MeshCaState/);
  });
});
