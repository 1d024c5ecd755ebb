// A local-mesh sidecar's certificate: issued on first use (with the CA), reused while valid, reissued when the CA
// changed or the namespace differs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { devIdentity, issueDevCertificates } from './dev-identity.js';

const serial = async (file: string) => new X509Certificate(await readFile(file)).serialNumber;

test('a certificate is issued once, reused while valid, and reissued for a new CA or another namespace', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-identity-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await devIdentity(dir, 'web');
  assert.deepEqual(first, { cert: join(dir, 'web.crt'), key: join(dir, 'web.key'), ca: join(dir, 'ca.crt') });
  const s1 = await serial(first.cert);
  await devIdentity(dir, 'web');
  assert.equal(await serial(first.cert), s1, 'reused');
  await devIdentity(dir, 'web', 'shop');
  assert.match(new X509Certificate(await readFile(first.cert)).subjectAltName ?? '', /ns\/shop\/svc\/web/);
  const s2 = await serial(first.cert);
  assert.notEqual(s2, s1, 'another namespace, another certificate');
  await Promise.all([unlink(join(dir, 'ca.crt')), unlink(join(dir, 'ca.key'))]);
  await devIdentity(dir, 'web', 'shop');
  assert.notEqual(await serial(first.cert), s2, 'a new CA: the old certificate is not trusted any more');
});

test('commands that make the CA at the same moment all end up with certificates from one CA', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-identity-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await Promise.all(['a', 'b', 'c', 'd'].map((s) => issueDevCertificates(dir, [s])));
  const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
  for (const s of ['a', 'b', 'c', 'd']) assert.ok(new X509Certificate(await readFile(join(dir, `${s}.crt`))).verify(ca.publicKey), `${s} is signed by the CA in the directory`);
});
