// Throwaway development CA and SPIFFE workload certificates (ECDSA P-256), and writing them as files for sidecars,
// until the mesh CA issues identities. Nothing here is meant for production trust.

import 'reflect-metadata'; // @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { makeDirectory, replaceFile, writeNew } from './secret-files.js';
import { segmentProblem, spiffeId, trustDomainProblem } from './spiffe.js';

// The library's typings name DOM types (Crypto, CryptoKey) that this Node-only build does not load; Node's webcrypto fits them.
x509.cryptoProvider.set(webcrypto);

const DAY = 86_400;
const DEFAULT_CA_LIFETIME = 365 * DAY;
const DEFAULT_LEAF_LIFETIME = DAY;
const DEFAULT_BACKDATE = 300;
const P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// Curves a reused CA key may use (OpenSSL name -> WebCrypto name) and the hash that matches each.
const CA_CURVES: Record<string, { namedCurve: string; hash: string }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
};

/** What went wrong and what to do; `usage` marks bad input (CLI exit code 2) as opposed to a runtime failure (1). */
export class DevCertsError extends Error {
  readonly usage: boolean;
  readonly fix: string;
  constructor(message: string, fix: string, options: { usage?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DevCertsError';
    this.usage = options.usage ?? false;
    this.fix = fix;
  }
}

/** A CA as PEM text: a certificate and its PKCS#8 private key. */
export interface CaMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface DevCa extends CaMaterial {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CreateDevCaOptions {
  /** Default: "Mycel development CA" plus a short random tag, so that two dev CAs never share a subject name. */
  commonName?: string;
  /** Default: one year. */
  lifetimeSeconds?: number;
  /** The clock, for tests. */
  now?: Date;
}

export interface IssueWorkloadCertOptions {
  trustDomain: string;
  namespace?: string;
  service: string;
  /** How long the certificate is valid from now. Default 24 hours. */
  lifetimeSeconds?: number;
  /** How far notBefore lies in the past, so that a peer whose clock runs behind accepts it. Default 5 minutes. */
  backdateSeconds?: number;
  now?: Date;
}

export interface WorkloadCert {
  readonly certPem: string;
  readonly keyPem: string;
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface WriteDevCertificatesOptions {
  trustDomain?: string;
  namespace?: string;
  services: readonly string[];
  /** Lifetime of each workload certificate. Default 24 hours. */
  lifetimeSeconds?: number;
  now?: Date;
}

export interface WrittenWorkload {
  readonly service: string;
  readonly spiffeId: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface DevCertificateFiles {
  readonly dir: string;
  readonly caCertPath: string;
  readonly caKeyPath: string;
  /** False when the CA already in the directory was reused. */
  readonly caCreated: boolean;
  readonly caNotAfter: Date;
  readonly workloads: readonly WrittenWorkload[];
  /** Every file written, in the order written. */
  readonly written: readonly string[];
}

/** A CA's parsed certificate and imported signing key. */
export interface Signer {
  readonly cert: x509.X509Certificate;
  readonly key: webcrypto.CryptoKey;
  readonly hash: string;
  /** The CA's subject key identifier, repeated as each leaf's authority key identifier. */
  readonly keyId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

// Parsing and importing a CA key costs more than a signature: keep the result per CA object.
const signers = new WeakMap<CaMaterial, Promise<Signer>>();

function checkSeconds(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new DevCertsError(`${name} must be a whole number of seconds >= ${min}, not ${value}`, `pass a ${name} such as 86400`, { usage: true });
  }
}

/** Whole seconds: X.509 times carry no fractions, so the dates returned equal the dates in the certificate. */
export function clock(now: Date | undefined): number {
  return Math.floor((now?.getTime() ?? Date.now()) / 1000) * 1000;
}

/** 16 random bytes, top bit clear and first byte non-zero: a positive serial of fixed length (RFC 5280 4.1.2.2). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) || 0x01;
  return bytes.toString('hex');
}

export function privateKeyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function certificatePem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

/** Makes a self-signed root that may sign workload certificates only (path length 0). */
export async function createDevCa(options: CreateDevCaOptions = {}): Promise<DevCa> {
  const lifetime = options.lifetimeSeconds ?? DEFAULT_CA_LIFETIME;
  checkSeconds('lifetimeSeconds', lifetime, 1);
  const commonName = options.commonName ?? `Mycel development CA ${randomBytes(4).toString('hex')}`;
  if (commonName.length === 0 || commonName.length > 64) {
    throw new DevCertsError('the CA common name must have 1 to 64 characters', 'pass a shorter commonName', { usage: true });
  }
  const now = clock(options.now);
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // JSON form, not a DN string: a comma or "=" in the common name must not create another attribute.
    name: [{ O: ['Mycel development'] }, { CN: [commonName] }],
    notBefore: new Date(now - DEFAULT_BACKDATE * 1000),
    notAfter: new Date(now + lifetime * 1000),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const ca: DevCa = { certPem: certificatePem(cert), keyPem: privateKeyPem(keys.privateKey), notBefore: cert.notBefore, notAfter: cert.notAfter };
  const keyId = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? '';
  signers.set(ca, Promise.resolve({ cert, key: keys.privateKey, hash: 'SHA-256', keyId, notBefore: cert.notBefore, notAfter: cert.notAfter }));
  return ca;
}

/** Checks that a PEM certificate and key form a usable CA and reads it; throws DevCertsError saying what is wrong. */
export async function loadDevCa(certPem: string, keyPem: string): Promise<DevCa> {
  const material: CaMaterial = { certPem, keyPem };
  const signer = await signerOf(material);
  const ca: DevCa = { certPem, keyPem, notBefore: signer.notBefore, notAfter: signer.notAfter };
  signers.set(ca, Promise.resolve(signer));
  return ca;
}

/** The signer of a CA (parsed and imported once per CA object); rejects with DevCertsError when unusable. */
export function signerOf(ca: CaMaterial): Promise<Signer> {
  let signer = signers.get(ca);
  if (!signer) {
    signer = readSigner(ca);
    signers.set(ca, signer);
    // A failed read is not cached, so that a corrected file can be tried again.
    signer.catch(() => signers.delete(ca));
  }
  return signer;
}

async function readSigner(ca: CaMaterial): Promise<Signer> {
  const fix = 'give a CA certificate together with its own EC private key (P-256 or P-384), or make a new dev CA';
  let nodeCert: X509Certificate;
  let keyObject: KeyObject;
  try {
    nodeCert = new X509Certificate(ca.certPem);
  } catch (err) {
    throw new DevCertsError(`the CA certificate is not a PEM X.509 certificate (${(err as Error).message})`, fix, { cause: err });
  }
  try {
    keyObject = createPrivateKey(ca.keyPem);
  } catch (err) {
    throw new DevCertsError(`the CA key is not a PEM private key (${(err as Error).message})`, fix, { cause: err });
  }
  if (!nodeCert.ca) throw new DevCertsError('the CA certificate is not a CA certificate (basicConstraints cA is not set)', fix);
  if (!nodeCert.checkPrivateKey(keyObject)) throw new DevCertsError('the CA key does not belong to the CA certificate', fix);
  const curve = keyObject.asymmetricKeyType === 'ec' ? CA_CURVES[keyObject.asymmetricKeyDetails?.namedCurve ?? ''] : undefined;
  if (!curve) throw new DevCertsError('the CA key is not an ECDSA P-256 or P-384 key', fix);
  const cert = new x509.X509Certificate(ca.certPem);
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  if (usage && (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new DevCertsError('the CA certificate\'s key usage does not allow signing certificates (keyCertSign)', fix);
  }
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: curve.namedCurve }, false, ['sign']);
  // A CA made elsewhere may lack a subject key identifier; then use the same SHA-1 key hash it would have had.
  const keyId = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? (await x509.SubjectKeyIdentifierExtension.create(cert.publicKey)).keyId;
  return { cert, key, hash: curve.hash, keyId, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

/** Why a namespace or service cannot be used for a workload certificate and its file names, or undefined. */
function nameProblem(what: 'namespace' | 'service', value: string): string | undefined {
  const base = segmentProblem(what, value);
  if (base !== undefined) return base;
  // Same rule as metadata.name of resources, so every certificate belongs to a nameable service.
  if (!DNS_LABEL.test(value)) return `${what} "${value}" is not a DNS label (1 to 63 lower-case letters, digits and "-", starting and ending with a letter or digit)`;
  return undefined;
}

/** The extensions of an X.509 SVID: not a CA, signing only, TLS server and client, the SPIFFE ID as the one critical SAN. */
export async function svidExtensions(id: string, publicKey: webcrypto.CryptoKey, issuerKeyId: string): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    new x509.AuthorityKeyIdentifierExtension(issuerKeyId),
  ];
}

/** Issues an X.509 SVID: empty subject, the SPIFFE ID as its only SAN, usable for TLS server and client authentication. */
export async function issueWorkloadCert(ca: CaMaterial, options: IssueWorkloadCertOptions): Promise<WorkloadCert> {
  const namespace = options.namespace ?? 'default';
  const lifetime = options.lifetimeSeconds ?? DEFAULT_LEAF_LIFETIME;
  const backdate = options.backdateSeconds ?? DEFAULT_BACKDATE;
  checkSeconds('lifetimeSeconds', lifetime, 1);
  checkSeconds('backdateSeconds', backdate, 0);
  const problem = trustDomainProblem(options.trustDomain) ?? nameProblem('namespace', namespace) ?? nameProblem('service', options.service);
  if (problem !== undefined) throw new DevCertsError(problem, 'use lower-case DNS names such as mycel.local, default, web', { usage: true });
  const id = spiffeId(options.trustDomain, namespace, options.service);

  const signer = await signerOf(ca);
  const now = clock(options.now);
  const notBefore = new Date(now - backdate * 1000);
  const notAfter = new Date(now + lifetime * 1000);
  if (notAfter > signer.notAfter) {
    throw new DevCertsError(
      `the CA is valid until ${signer.notAfter.toISOString()}, before the certificate for ${options.service} would expire (${notAfter.toISOString()})`,
      'make a new dev CA, or ask for a shorter lifetime',
    );
  }
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const serialNumber = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    issuer: signer.cert.subjectName,
    // No subject: the identity is the URI SAN alone, which RFC 5280 4.2.1.6 then requires to be critical.
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: { name: 'ECDSA', hash: signer.hash } as webcrypto.EcdsaParams,
    extensions: await svidExtensions(id, keys.publicKey, signer.keyId),
  });
  return { certPem: certificatePem(cert), keyPem: privateKeyPem(keys.privateKey), spiffeId: id, serialNumber, notBefore, notAfter };
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function fsError(err: unknown, dir: string): DevCertsError {
  if (err instanceof DevCertsError) return err;
  const e = err as NodeJS.ErrnoException;
  return new DevCertsError(`could not write certificates in ${dir}: ${e.message ?? String(err)}`, `check that ${dir} is a directory you can write to, or choose another directory`, { cause: err });
}

/**
 * Writes ca.crt, ca.key and <service>.crt, <service>.key for each service into `dir`. A CA already in `dir` is
 * reused, so that services can be added later and still trust each other.
 */
export async function writeDevCertificates(dir: string, options: WriteDevCertificatesOptions): Promise<DevCertificateFiles> {
  const trustDomain = options.trustDomain ?? 'mycel.local';
  const namespace = options.namespace ?? 'default';
  const lifetime = options.lifetimeSeconds ?? DEFAULT_LEAF_LIFETIME;
  const services = [...new Set(options.services)];
  // Everything that can be wrong with the input is found before anything is written.
  checkSeconds('lifetimeSeconds', lifetime, 1);
  const nameFix = 'use lower-case DNS names such as mycel.local, default, web';
  const tdProblem = trustDomainProblem(trustDomain) ?? nameProblem('namespace', namespace);
  if (tdProblem !== undefined) throw new DevCertsError(tdProblem, nameFix, { usage: true });
  if (services.length === 0) throw new DevCertsError('no service named', 'name at least one service to make a certificate for', { usage: true });
  for (const service of services) {
    const problem = nameProblem('service', service);
    if (problem !== undefined) throw new DevCertsError(problem, nameFix, { usage: true });
    if (service === 'ca') throw new DevCertsError('a service cannot be called "ca": its files would replace the CA\'s', 'rename the service', { usage: true });
  }

  const root = resolve(dir);
  const caCertPath = join(root, 'ca.crt');
  const caKeyPath = join(root, 'ca.key');
  const written: string[] = [];
  try {
    await makeDirectory(root, 0o700);
    const [certPem, keyPem] = await Promise.all([readIfPresent(caCertPath), readIfPresent(caKeyPath)]);
    let ca: DevCa;
    const caCreated = certPem === undefined && keyPem === undefined;
    if (certPem !== undefined && keyPem !== undefined) {
      try {
        ca = await loadDevCa(certPem, keyPem);
      } catch (err) {
        const what = err instanceof DevCertsError ? err.message : String(err);
        throw new DevCertsError(`the CA in ${root} cannot be used: ${what}`, `repair ${caCertPath} and ${caKeyPath}, or delete both to make a new dev CA (certificates of the old one stop being trusted)`, { cause: err });
      }
    } else if (caCreated) {
      ca = await createDevCa({ lifetimeSeconds: Math.max(DEFAULT_CA_LIFETIME, lifetime + DAY), now: options.now });
    } else {
      const [have, missing] = certPem === undefined ? [caKeyPath, caCertPath] : [caCertPath, caKeyPath];
      throw new DevCertsError(`${root} has ${basename(have)} but no ${basename(missing)}`, `restore ${missing}, or delete ${have} to make a new dev CA`);
    }
    if (!caCreated && clock(options.now) + lifetime * 1000 > ca.notAfter.getTime()) {
      throw new DevCertsError(
        `the CA in ${root} is valid until ${ca.notAfter.toISOString()}, before certificates issued now would expire`,
        `delete ${caCertPath} and ${caKeyPath} to make a new dev CA, or ask for a shorter lifetime`,
      );
    }

    const issued: Array<{ service: string; cert: WorkloadCert }> = [];
    for (const service of services) {
      const cert = await issueWorkloadCert(ca, { trustDomain, namespace, service, lifetimeSeconds: lifetime, now: options.now });
      issued.push({ service, cert });
    }

    if (caCreated) {
      try {
        // Exclusive creation: a CA that appeared meanwhile (another run) is never replaced.
        await writeNew(caKeyPath, ca.keyPem, 0o600);
        written.push(caKeyPath);
        await writeNew(caCertPath, ca.certPem, 0o644);
        written.push(caCertPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new DevCertsError(`another process created a CA in ${root} at the same time`, 'run the command again to reuse that CA', { cause: err });
        }
        throw err;
      }
    }
    const workloads: WrittenWorkload[] = [];
    for (const { service, cert } of issued) {
      const certPath = join(root, `${service}.crt`);
      const keyPath = join(root, `${service}.key`);
      // Key first: whoever reloads on a certificate change then finds the matching key already there.
      await replaceFile(keyPath, cert.keyPem, 0o600);
      written.push(keyPath);
      await replaceFile(certPath, cert.certPem, 0o644);
      written.push(certPath);
      workloads.push({ service, spiffeId: cert.spiffeId, certPath, keyPath, notBefore: cert.notBefore, notAfter: cert.notAfter });
    }
    return { dir: root, caCertPath, caKeyPath, caCreated, caNotAfter: ca.notAfter, workloads, written };
  } catch (err) {
    throw fsError(err, root);
  }
}
