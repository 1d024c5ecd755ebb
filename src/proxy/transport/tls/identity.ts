// The workload identity seam: the current certificate, key and trust bundle as TLS contexts for the inbound server and
// outbound connections. Swapping it (new files today, the mesh CA later) affects new handshakes only, never open ones.

import { EventEmitter } from 'node:events';
import { X509Certificate, createPrivateKey, constants as cryptoConstants } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import tls, { type SecureContext, type SecureContextOptions } from 'node:tls';
import { splitPems } from '../../../security/pem.js';
import { spiffeIdFromX509 } from '../../../security/spiffe.js';

export interface IdentityMaterial {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface IdentitySnapshot {
  readonly spiffeId: string;
  readonly notAfter: Date;
  /** For outbound connections (client certificate plus trust bundle). */
  readonly clientContext: SecureContext;
  /** For the inbound listener, via server.setSecureContext(). */
  readonly serverOptions: SecureContextOptions;
}

/**
 * TLS 1.3 only; no session tickets, so that every connection proves its certificate again; key exchange on X25519,
 * P-256 or P-384 only (no finite-field groups, whose 2048-bit size gives 112-bit security).
 */
const TLS_OPTIONS = {
  minVersion: 'TLSv1.3' as const,
  maxVersion: 'TLSv1.3' as const,
  secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
  ecdhCurve: 'X25519:P-256:P-384',
};

/** Checks that cert, key and CA belong together and the cert carries one SPIFFE ID; throws with the reason otherwise. */
export function buildIdentity(m: IdentityMaterial): IdentitySnapshot {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(m.certPem);
  } catch (err) {
    throw new Error(`the certificate is not valid PEM: ${(err as Error).message}`);
  }
  const key = createPrivateKey(m.keyPem);
  if (!cert.checkPrivateKey(key)) throw new Error('the private key does not belong to the certificate');
  const spiffeId = spiffeIdFromX509(cert);
  if (spiffeId === undefined) throw new Error('the certificate has no SPIFFE ID (exactly one spiffe:// URI SAN is required)');
  const cas = splitPems(m.caPem).map((p) => new X509Certificate(p));
  if (cas.length === 0) throw new Error('the CA file holds no certificate');
  // The leaf must chain to the bundle; an intermediate may follow the leaf in the cert file.
  const chain = splitPems(m.certPem).map((p) => new X509Certificate(p));
  const top = chain[chain.length - 1] as X509Certificate;
  if (!cas.some((ca) => top.checkIssued(ca) && top.verify(ca.publicKey)) && !cas.some((ca) => ca.fingerprint256 === top.fingerprint256)) {
    throw new Error('the certificate is not issued by the CA in the trust bundle');
  }
  const serverOptions: SecureContextOptions = { cert: m.certPem, key: m.keyPem, ca: m.caPem, ...TLS_OPTIONS };
  return {
    spiffeId,
    notAfter: new Date(cert.validTo),
    clientContext: tls.createSecureContext(serverOptions),
    serverOptions,
  };
}

export async function readIdentityFiles(files: { cert: string; key: string; ca: string }): Promise<IdentityMaterial> {
  const [certPem, keyPem, caPem] = await Promise.all([readFile(files.cert, 'utf8'), readFile(files.key, 'utf8'), readFile(files.ca, 'utf8')]);
  return { certPem, keyPem, caPem };
}

export interface IdentityEvents {
  change: [IdentitySnapshot];
}

/** Holds the current identity; `set` swaps it for all future handshakes. */
export class IdentityStore extends EventEmitter<IdentityEvents> {
  constructor(private snapshot: IdentitySnapshot) {
    super();
  }

  get current(): IdentitySnapshot {
    return this.snapshot;
  }

  set(next: IdentitySnapshot): void {
    this.snapshot = next;
    this.emit('change', next);
  }
}

export const TLS_SERVER_BASE = TLS_OPTIONS;
