// Audit of the sidecar's inbound mTLS port with outside scanners (sslscan, testssl.sh): TLS 1.3 only, AEAD suites
// only, strong key exchange groups only, no renegotiation, no compression, no session resumption. The certificate
// findings a public-web scanner makes (private CA, SPIFFE URI instead of a host name, 24 h lifetime, no OCSP) are
// expected for mesh identities and are not checked here.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { requirePackage, run } from '../helpers/http.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';

describe('TLS audit of the inbound port', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  let scratch: string;

  before(async () => {
    app = await startHttpApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http' });
    scratch = await mkdtemp(join(tmpdir(), 'mycel-tls-audit-'));
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test('sslscan: TLS 1.3 only, AEAD suites, X25519/P-256/P-384, no renegotiation, no compression', async (t) => {
    if (!(await requirePackage(t, 'sslscan', 'sslscan'))) return;
    const r = await run('sslscan', ['--no-colour', mesh.api.inbound], undefined, 60_000);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    for (const p of ['SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2']) assert.match(out, new RegExp(`^${p.replace('.', '\\.')}\\s+disabled$`, 'm'), `${p} is disabled`);
    assert.match(out, /^TLSv1\.3\s+enabled$/m);
    const suites = [...out.matchAll(/^(?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(suites.sort(), ['TLSv1.3 TLS_AES_128_GCM_SHA256', 'TLSv1.3 TLS_AES_256_GCM_SHA384', 'TLSv1.3 TLS_CHACHA20_POLY1305_SHA256']);
    const groups = [...out.matchAll(/^TLSv1\.3\s+\d+ bits\s+(\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(groups.sort(), ['secp256r1', 'secp384r1', 'x25519']);
    assert.match(out, /Session renegotiation not supported/);
    // TLS 1.3 has no compression; sslscan says so, or that its OpenSSL cannot test it (testssl's CRIME check covers it).
    assert.match(out, /Compression disabled|OpenSSL version does not support compression/);
    t.diagnostic(`sslscan: protocols TLSv1.3 only; suites ${suites.join(', ')}; groups ${groups.join(', ')}; renegotiation not supported`);
  });

  test('testssl.sh: protocols, cipher categories, renegotiation, CRIME and session resumption', async (t) => {
    if (!(await requirePackage(t, 'testssl', 'testssl.sh'))) return;
    const json = join(scratch, 'testssl.json');
    const r = await run('testssl', ['--quiet', '--color', '0', '--warnings', 'off', '-p', '-s', '-S', '-R', '-C', '--ip', 'one', '--jsonfile', json, mesh.api.inbound], undefined, 170_000);
    assert.ok(r.code !== null, 'testssl finished');
    const findings = new Map((JSON.parse(await readFile(json, 'utf8')) as Array<{ id: string; finding: string }>).map((f) => [f.id, f.finding]));
    const expect = (id: string, re: RegExp) => assert.match(findings.get(id) ?? '(missing)', re, id);
    for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2']) expect(id, /^not offered/);
    expect('TLS1_3', /^offered/);
    for (const id of ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA', 'cipherlist_AVERAGE']) expect(id, /^not offered/);
    expect('cipherlist_STRONG', /^offered/);
    expect('secure_renego', /TLS 1\.3 only|not vulnerable/);
    expect('secure_client_renego', /not vulnerable/);
    expect('CRIME_TLS', /TLS 1\.3 only|not vulnerable/);
    expect('sessionresumption_ticket', /not supported/);
    expect('sessionresumption_ID', /no resumption/i);
    t.diagnostic(`testssl.sh: ${['TLS1_2', 'TLS1_3', 'cipherlist_STRONG', 'secure_renego', 'CRIME_TLS', 'sessionresumption_ticket', 'sessionresumption_ID'].map((id) => `${id}=${findings.get(id)}`).join('; ')}`);
  });
});
