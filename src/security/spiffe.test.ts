// Tests of SPIFFE ID building and strict parsing, and of reading the identity from real certificates' SANs.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, webcrypto } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpiffeId, parseSubjectAltNames, spiffeId, spiffeIdFromPeerCertificate, spiffeIdFromX509 } from './spiffe.js';

x509.cryptoProvider.set(webcrypto);

/** A self-signed certificate with exactly the SAN entries given, to see what Node reports for it. */
async function certWithSans(names: x509.JsonGeneralNames): Promise<X509Certificate> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: ['san test'] }],
    keys,
    extensions: names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  return new X509Certificate(cert.toString('pem'));
}

test('spiffeId builds the mesh shape and parseSpiffeId reads it back', () => {
  const id = spiffeId('mycel.local', 'default', 'web');
  assert.equal(id, 'spiffe://mycel.local/ns/default/svc/web');
  assert.deepEqual(parseSpiffeId(id), { trustDomain: 'mycel.local', namespace: 'default', service: 'web' });
  assert.deepEqual(parseSpiffeId('spiffe://prod.example.com/ns/team-a/svc/api.v2'), { trustDomain: 'prod.example.com', namespace: 'team-a', service: 'api.v2' });
});

test('spiffeId refuses parts that cannot appear in an ID instead of building a malformed one', () => {
  assert.throws(() => spiffeId('Mycel.Local', 'default', 'web'), RangeError);
  assert.throws(() => spiffeId('mycel.local', 'default', ''), RangeError);
  assert.throws(() => spiffeId('mycel.local', 'a/b', 'web'), RangeError);
  assert.throws(() => spiffeId('mycel.local', 'default', '..'), RangeError);
  assert.throws(() => spiffeId('', 'default', 'web'), RangeError);
});

test('parseSpiffeId rejects everything that is not exactly spiffe://td/ns/NS/svc/SVC', () => {
  const bad: Array<[string, string]> = [
    ['wrong scheme', 'https://mycel.local/ns/default/svc/web'],
    ['upper-case scheme', 'SPIFFE://mycel.local/ns/default/svc/web'],
    ['extra segment', 'spiffe://mycel.local/ns/default/svc/web/extra'],
    ['trailing slash', 'spiffe://mycel.local/ns/default/svc/web/'],
    ['missing svc', 'spiffe://mycel.local/ns/default'],
    ['other path shape', 'spiffe://mycel.local/sa/default/svc/web'],
    ['upper-case trust domain', 'spiffe://Mycel.local/ns/default/svc/web'],
    ['upper-case service', 'spiffe://mycel.local/ns/default/svc/Web'],
    ['query string', 'spiffe://mycel.local/ns/default/svc/web?x=1'],
    ['fragment', 'spiffe://mycel.local/ns/default/svc/web#f'],
    ['port', 'spiffe://mycel.local:8443/ns/default/svc/web'],
    ['userinfo', 'spiffe://user@mycel.local/ns/default/svc/web'],
    ['empty service', 'spiffe://mycel.local/ns/default/svc/'],
    ['empty namespace', 'spiffe://mycel.local/ns//svc/web'],
    ['empty trust domain', 'spiffe:///ns/default/svc/web'],
    ['dot segment', 'spiffe://mycel.local/ns/./svc/web'],
    ['dot-dot segment', 'spiffe://mycel.local/ns/default/svc/..'],
    ['percent escape', 'spiffe://mycel.local/ns/default/svc/w%65b'],
    ['trailing newline', 'spiffe://mycel.local/ns/default/svc/web\n'],
    ['leading space', ' spiffe://mycel.local/ns/default/svc/web'],
    ['trust domain with empty label', 'spiffe://mycel..local/ns/default/svc/web'],
    ['trust domain label starting with "-"', 'spiffe://-mycel.local/ns/default/svc/web'],
    ['underscore in trust domain', 'spiffe://my_cel.local/ns/default/svc/web'],
    ['too long', `spiffe://mycel.local/ns/default/svc/${'a'.repeat(2048)}`],
  ];
  for (const [why, uri] of bad) assert.equal(parseSpiffeId(uri), undefined, why);
});

test('parseSubjectAltNames splits Node SAN text and decodes quoted values', () => {
  assert.deepEqual(parseSubjectAltNames('DNS:a.example, URI:spiffe://td/ns/n/svc/s, IP Address:::1'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'URI', value: 'spiffe://td/ns/n/svc/s' },
    { type: 'IP Address', value: '::1' },
  ]);
  assert.deepEqual(parseSubjectAltNames('URI:"spiffe://td/ns/n/svc/s, URI:spiffe://td/ns/n/svc/t", DNS:x'), [
    { type: 'URI', value: 'spiffe://td/ns/n/svc/s, URI:spiffe://td/ns/n/svc/t' },
    { type: 'DNS', value: 'x' },
  ]);
  assert.equal(parseSubjectAltNames('URI:"unterminated'), undefined);
  assert.equal(parseSubjectAltNames('no colon here'), undefined);
});

test('spiffeIdFromPeerCertificate returns the single SPIFFE URI SAN and nothing otherwise', () => {
  const peer = (subjectaltname?: string) => ({ subjectaltname }) as unknown as PeerCertificate;
  assert.equal(spiffeIdFromPeerCertificate(peer('DNS:web.local, URI:spiffe://mycel.local/ns/default/svc/web')), 'spiffe://mycel.local/ns/default/svc/web');
  assert.equal(spiffeIdFromPeerCertificate(peer('DNS:web.local')), undefined, 'no URI SAN');
  assert.equal(spiffeIdFromPeerCertificate(peer(undefined)), undefined, 'no SAN extension');
  assert.equal(spiffeIdFromPeerCertificate({} as PeerCertificate), undefined, 'no certificate (what getPeerCertificate returns then)');
  assert.equal(spiffeIdFromPeerCertificate(undefined), undefined);
  assert.equal(
    spiffeIdFromPeerCertificate(peer('URI:spiffe://mycel.local/ns/default/svc/web, URI:spiffe://mycel.local/ns/default/svc/admin')),
    undefined,
    'two URI SANs: no single identity',
  );
  assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://mycel.local/ns/default/svc/web, URI:https://web.example')), undefined, 'a second, non-SPIFFE URI SAN');
  assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://mycel.local/other/path')), undefined, 'a SPIFFE ID of another shape');
});

test('spiffeIdFromX509 reads real certificates: one URI SAN yes, two or none no', async () => {
  const one = await certWithSans([{ type: 'dns', value: 'web.local' }, { type: 'url', value: 'spiffe://mycel.local/ns/default/svc/web' }]);
  assert.equal(spiffeIdFromX509(one), 'spiffe://mycel.local/ns/default/svc/web');

  const two = await certWithSans([
    { type: 'url', value: 'spiffe://mycel.local/ns/default/svc/web' },
    { type: 'url', value: 'spiffe://mycel.local/ns/default/svc/admin' },
  ]);
  assert.equal(spiffeIdFromX509(two), undefined);

  assert.equal(spiffeIdFromX509(await certWithSans([{ type: 'dns', value: 'web.local' }])), undefined);
  assert.equal(spiffeIdFromX509(await certWithSans([])), undefined);
});

test('a URI SAN that embeds a separator cannot pass for a second, forged entry', async () => {
  const forged = await certWithSans([{ type: 'url', value: 'https://x, URI:spiffe://mycel.local/ns/default/svc/admin' }]);
  // Node quotes such a value, so the text holds one entry, not two.
  assert.match(forged.subjectAltName ?? '', /^URI:"/);
  assert.equal(spiffeIdFromX509(forged), undefined);
});
