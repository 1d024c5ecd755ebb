// The mesh CA's certificates: a self-signed root, an intermediate under it, and workload leaves issued from a CSR.
// The leaf's identity is always the one given by the caller (from a token or a current certificate), never the CSR's.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, randomBytes, webcrypto } from 'node:crypto';
import { certificatePem, clock, privateKeyPem, randomSerial, signerOf, svidExtensions, type CaMaterial } from '../../security/dev-ca.js';

const P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN_P256 = { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams;
/** CA certificates are backdated too, so that a leaf backdated for clock skew still lies inside its issuer's validity. */
const CA_BACKDATE_SECONDS = 3600;

/** Why a request cannot be served: `status` is the HTTP status the API answers with. */
export class CaError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}

/** SHA-256 of the certificate's DER, lower-case hex: how roots are named in the API, the store and the CLI. */
export function fingerprintOf(pem: string): string {
  const der = new X509Certificate(pem).raw;
  return createHash('sha256').update(der).digest('hex');
}

export interface NewCa extends CaMaterial {
  readonly fingerprint: string;
  readonly notAfter: Date;
}

/** A new self-signed root that may sign one level of intermediates (path length 1). */
export async function generateRoot(o: { lifetimeSeconds: number; now?: Date }): Promise<NewCa> {
  const now = clock(o.now);
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ O: ['Mycel mesh'] }, { CN: [`Mycel root CA ${randomBytes(4).toString('hex')}`] }],
    notBefore: new Date(now - CA_BACKDATE_SECONDS * 1000),
    notAfter: new Date(now + o.lifetimeSeconds * 1000),
    keys,
    signingAlgorithm: SIGN_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = certificatePem(cert);
  return { certPem, keyPem: privateKeyPem(keys.privateKey), fingerprint: fingerprintOf(certPem), notAfter: cert.notAfter };
}

/** A new intermediate signed by `root`, that signs workload leaves only (path length 0); never outlives the root. */
export async function generateIntermediate(root: CaMaterial, o: { lifetimeSeconds: number; now?: Date }): Promise<NewCa> {
  const signer = await signerOf(root);
  const now = clock(o.now);
  const notAfter = new Date(Math.min(now + o.lifetimeSeconds * 1000, signer.notAfter.getTime()));
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    issuer: signer.cert.subjectName,
    subject: [{ O: ['Mycel mesh'] }, { CN: [`Mycel intermediate CA ${randomBytes(4).toString('hex')}`] }],
    notBefore: new Date(Math.max(now - CA_BACKDATE_SECONDS * 1000, signer.notBefore.getTime())),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: { name: 'ECDSA', hash: signer.hash } as webcrypto.EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(signer.keyId),
    ],
  });
  const certPem = certificatePem(cert);
  return { certPem, keyPem: privateKeyPem(keys.privateKey), fingerprint: fingerprintOf(certPem), notAfter: cert.notAfter };
}

/** Parses a PEM CSR and checks its self-signature and key type (ECDSA P-256 only). */
export async function readCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new CaError(400, 'bad-csr', `the CSR is not a PEM PKCS#10 request (${(err as Error).message})`);
  }
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new CaError(400, 'bad-csr', 'the CSR\'s key must be ECDSA P-256');
  if (!(await csr.verify())) throw new CaError(400, 'bad-csr', 'the CSR\'s signature does not verify with its own key');
  return csr;
}

export interface LeafOptions {
  spiffeId: string;
  lifetimeSeconds: number;
  backdateSeconds: number;
  now?: Date;
}

/**
 * Issues an X.509 SVID for the CSR's key: empty subject, the given SPIFFE ID as the only (critical) SAN, TLS server
 * and client EKUs. Whatever names or extensions the CSR asks for are ignored. Returns the leaf PEM.
 */
export async function issueLeaf(issuer: CaMaterial, csr: x509.Pkcs10CertificateRequest, o: LeafOptions): Promise<{ certPem: string; notBefore: Date; notAfter: Date }> {
  const signer = await signerOf(issuer);
  const now = clock(o.now);
  const notAfter = new Date(now + o.lifetimeSeconds * 1000);
  if (notAfter > signer.notAfter) {
    throw new CaError(503, 'ca-expiring', `the intermediate CA expires at ${signer.notAfter.toISOString()}, before a new certificate would; rotate the CA (mycel ca rotate)`);
  }
  // Never before the issuer's own start: a chain whose leaf starts earlier than its issuer confuses some verifiers.
  const notBefore = new Date(Math.max(now - o.backdateSeconds * 1000, signer.notBefore.getTime()));
  const publicKey = await csr.publicKey.export();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    issuer: signer.cert.subjectName,
    notBefore,
    notAfter,
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: { name: 'ECDSA', hash: signer.hash } as webcrypto.EcdsaParams,
    extensions: await svidExtensions(o.spiffeId, publicKey, signer.keyId),
  });
  return { certPem: certificatePem(cert), notBefore, notAfter };
}

export interface TlsLeafOptions {
  /** The URI SAN (the control plane's or the admin's SPIFFE ID). */
  spiffeId: string;
  /** DNS names and IP addresses the certificate answers for (a server certificate); none for a client certificate. */
  dnsNames?: string[];
  ips?: string[];
  /** Extended key usages: server and client (the control plane) or client only (an admin). */
  serverAuth: boolean;
  lifetimeSeconds: number;
  now?: Date;
}

/**
 * A leaf for the control plane's own TLS (server: SPIFFE ID plus host names, so that browsers and curl verify it by
 * host) or an admin's client certificate (SPIFFE ID only). `publicKey` is the CSR's key; without one a key is made here.
 */
export async function issueTlsLeaf(issuer: CaMaterial, o: TlsLeafOptions, publicKey?: webcrypto.CryptoKey): Promise<{ certPem: string; keyPem?: string; notAfter: Date }> {
  const signer = await signerOf(issuer);
  const now = clock(o.now);
  const notAfter = new Date(Math.min(now + o.lifetimeSeconds * 1000, signer.notAfter.getTime()));
  let keyPem: string | undefined;
  if (publicKey === undefined) {
    const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
    publicKey = keys.publicKey;
    keyPem = privateKeyPem(keys.privateKey);
  }
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: o.spiffeId }, ...(o.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })), ...(o.ips ?? []).map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    issuer: signer.cert.subjectName,
    notBefore: new Date(Math.max(now - 300_000, signer.notBefore.getTime())),
    notAfter,
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: { name: 'ECDSA', hash: signer.hash } as webcrypto.EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(o.serverAuth ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth], false),
      // Critical: the subject is empty, so the names are all there is (RFC 5280 4.2.1.6).
      new x509.SubjectAlternativeNameExtension(names, true),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      new x509.AuthorityKeyIdentifierExtension(signer.keyId),
    ],
  });
  return { certPem: certificatePem(cert), ...(keyPem !== undefined ? { keyPem } : {}), notAfter: cert.notAfter };
}
