// A sidecar's workload identity in the local mesh: the certificate of its service under .mycel/certs, issued by the
// local mesh's development CA (made on first use). A certificate that still has half a day left is reused.

import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DevCertsError, writeDevCertificates } from '../security/dev-ca.js';

export interface IdentityFiles {
  cert: string;
  key: string;
  ca: string;
}

const REUSE_IF_LEFT_MS = 12 * 3600_000;

async function usable(files: IdentityFiles, uriSuffix: string, now: number): Promise<boolean> {
  try {
    const [certPem, caPem] = await Promise.all([readFile(files.cert, 'utf8'), readFile(files.ca, 'utf8'), readFile(files.key, 'utf8')]);
    const cert = new X509Certificate(certPem);
    // Issued by the CA in the directory now (it may have been replaced since), and not about to expire.
    return cert.verify(new X509Certificate(caPem).publicKey) && Date.parse(cert.validTo) - now > REUSE_IF_LEFT_MS && (cert.subjectAltName ?? '').endsWith(uriSuffix);
  } catch {
    return false;
  }
}

/** The certificate files of `service`, issued now unless usable ones are there. */
export async function devIdentity(certsDir: string, service: string, namespace = 'default'): Promise<IdentityFiles> {
  const files = { cert: join(certsDir, `${service}.crt`), key: join(certsDir, `${service}.key`), ca: join(certsDir, 'ca.crt') };
  if (await usable(files, `/ns/${namespace}/svc/${service}`, Date.now())) return files;
  await issueDevCertificates(certsDir, [service], namespace);
  return files;
}

/** Issues certificates for services with the directory's CA (made if missing), once more if another process raced us. */
export async function issueDevCertificates(certsDir: string, services: readonly string[], namespace = 'default'): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await writeDevCertificates(certsDir, { services, namespace });
      return;
    } catch (err) {
      // Two commands making the CA at once: one wins, the other finds half a CA or an existing one; the next try reuses it.
      if (!(err instanceof DevCertsError) || attempt === 3 || !/at the same time|but no/.test(err.message)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}
