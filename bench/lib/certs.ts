// Test PKI for the benchmark, made with the openssl CLI: an ECDSA P-256 CA and one leaf per service whose only
// subjectAltName is its SPIFFE URI (serverAuth + clientAuth). HAProxy gets cert+key concatenated in one PEM.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBounded } from './processes.js';

export interface Leaf {
  spiffeId: string;
  cert: string;
  key: string;
  /** cert followed by key, for HAProxy's `crt`. */
  pem: string;
}

export interface Certs {
  ca: string;
  leaves: Record<'web' | 'api', Leaf>;
}

export const trustDomain = 'mycel.local';

export function spiffeIdFor(service: string, namespace = 'default'): string {
  return `spiffe://${trustDomain}/ns/${namespace}/svc/${service}`;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await runBounded('openssl', args, { cpu: null, timeoutMs: 20_000, cwd });
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
}

async function ecKey(dir: string, file: string): Promise<string> {
  const path = join(dir, file);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path], dir);
  chmodSync(path, 0o600);
  return path;
}

/** Creates the CA and the `web` and `api` leaves in `dir` (valid for two days). */
export async function makeCerts(dir: string): Promise<Certs> {
  const caKey = await ecKey(dir, 'ca.key');
  const ca = join(dir, 'ca.crt');
  await openssl(
    [
      'req', '-x509', '-new', '-key', caKey, '-sha256', '-days', '2',
      '-subj', '/O=Mycel bench/CN=Mycel bench CA',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-out', ca,
    ],
    dir,
  );
  const leaves = {} as Record<'web' | 'api', Leaf>;
  for (const name of ['web', 'api'] as const) {
    const spiffeId = spiffeIdFor(name);
    const key = await ecKey(dir, `${name}.key`);
    const csr = join(dir, `${name}.csr`);
    const ext = join(dir, `${name}.ext`);
    const cert = join(dir, `${name}.crt`);
    writeFileSync(
      ext,
      [
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth, clientAuth',
        `subjectAltName = URI:${spiffeId}`,
        '',
      ].join('\n'),
    );
    // CN = service name: nginx's proxy_ssl_verify checks a host name, which OpenSSL takes from the CN when the
    // certificate has no DNS subjectAltName.
    await openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr], dir);
    await openssl(
      ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', `0x${Date.now().toString(16)}${name === 'web' ? '1' : '2'}`,
        '-days', '2', '-sha256', '-extfile', ext, '-out', cert],
      dir,
    );
    const pem = join(dir, `${name}.pem`);
    writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o600 });
    leaves[name] = { spiffeId, cert, key, pem };
  }
  return { ca, leaves };
}

/** Options of a TLS server (tests) that answers as `service` and requires a client certificate of the bench CA. */
export function mtlsServerOptions(certs: Certs, service: 'web' | 'api'): { cert: Buffer; key: Buffer; ca: Buffer; requestCert: true; rejectUnauthorized: true } {
  const leaf = certs.leaves[service];
  return { cert: readFileSync(leaf.cert), key: readFileSync(leaf.key), ca: readFileSync(certs.ca), requestCert: true, rejectUnauthorized: true };
}
