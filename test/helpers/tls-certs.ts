// Odd client certificates for TLS tests, signed by a given CA: no SPIFFE ID (DNS name only), several SPIFFE IDs,
// or a malformed one. The dev CA only issues proper SVIDs, so these are built here with @peculiar/x509.

import 'reflect-metadata'; // @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API
import * as x509 from '@peculiar/x509';
import { KeyObject, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto);

const P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

export interface LeafPem {
  certPem: string;
  keyPem: string;
}

/** A client/server leaf certificate from the CA with exactly the given subject alternative names. */
export async function issueLeafWithSans(caCertPem: string, caKeyPem: string, sans: x509.JsonGeneralName[], subject = ''): Promise<LeafPem> {
  const caCert = new x509.X509Certificate(caCertPem);
  const der = createPrivateKey(caKeyPem).export({ type: 'pkcs8', format: 'der' });
  const caKey = await webcrypto.subtle.importKey('pkcs8', der, P256, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) || 1;
  const now = Date.now();
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial.toString('hex'),
    issuer: caCert.subject,
    subject,
    notBefore: new Date(now - 300_000),
    notAfter: new Date(now + 3_600_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(sans, subject === ''),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(caKeyId ? [new x509.AuthorityKeyIdentifierExtension(caKeyId)] : []),
    ],
  });
  return { certPem: `${cert.toString('pem')}\n`, keyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string };
}
