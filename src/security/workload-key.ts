// A workload's own key pair and certificate requests (a sidecar's, or an admin's for `mycel ca admin-cert`): ECDSA
// P-256 made in this process, a CSR carrying only the public key (the control plane decides the identity), and
// signatures by the current key that prove who renews.

import type * as X509Lib from '@peculiar/x509';
import { KeyObject, createPrivateKey, sign, webcrypto } from 'node:crypto';

type X509 = typeof X509Lib;
let x509: Promise<X509> | null = null;

/** The certificate library, loaded on first use: a sidecar with certificate files never needs it (about 10 MiB). */
function loadX509(): Promise<X509> {
  x509 ??= import('reflect-metadata').then(async () => {
    const lib = await import('@peculiar/x509');
    lib.cryptoProvider.set(webcrypto);
    return lib;
  });
  return x509;
}

export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
  /** The CSR's DER, which a renewal proof signs. */
  csrDer: Buffer;
}

/** A fresh P-256 key and a CSR for it (no names: the identity comes from the join token or the current certificate). */
export async function newKeyAndCsr(): Promise<KeyAndCsr> {
  const lib = await loadX509();
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const csr = await lib.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams });
  const keyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { keyPem, csrPem: csr.toString('pem'), csrDer: Buffer.from(csr.rawData) };
}

/** Base64 ECDSA/SHA-256 signature (DER) over `data` by the PEM key. */
export function signWith(keyPem: string, data: Buffer): string {
  return sign('sha256', data, createPrivateKey(keyPem)).toString('base64');
}
