// How close the local mesh's certificates (.mycel/certs/*.crt) are to expiry, for `mycel check`: expired fails; near
// expiry warns, "near" being 7 days or a fifth of the certificate's lifetime, whichever is shorter (a 24 h workload
// certificate would otherwise always warn).

import { X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CertExpiry {
  file: string;
  /** The SPIFFE ID (workload certificates) or the subject (the CA). */
  name: string;
  notAfter: Date;
  msLeft: number;
  state: 'ok' | 'near-expiry' | 'expired' | 'unreadable';
  problem?: string;
}

const WEEK_MS = 7 * 86_400_000;

export function expiryState(notBefore: Date, notAfter: Date, now: number): CertExpiry['state'] {
  const left = notAfter.getTime() - now;
  if (left <= 0) return 'expired';
  const near = Math.min(WEEK_MS, (notAfter.getTime() - notBefore.getTime()) / 5);
  return left < near ? 'near-expiry' : 'ok';
}

/** Every *.crt in `dir` (none if the directory does not exist), soonest expiry first. */
export async function certificateExpiries(dir: string, now = Date.now()): Promise<CertExpiry[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.crt')).sort();
  } catch {
    return [];
  }
  const out: CertExpiry[] = [];
  for (const n of names) {
    const file = join(dir, n);
    try {
      const cert = new X509Certificate(await readFile(file));
      const notAfter = new Date(cert.validTo);
      const uri = /URI:(\S+?)(,|$)/.exec(cert.subjectAltName ?? '')?.[1];
      out.push({ file, name: uri ?? cert.subject.replace(/\n/g, ', '), notAfter, msLeft: notAfter.getTime() - now, state: expiryState(new Date(cert.validFrom), notAfter, now) });
    } catch (err) {
      out.push({ file, name: n, notAfter: new Date(0), msLeft: 0, state: 'unreadable', problem: (err as Error).message });
    }
  }
  return out.sort((a, b) => a.msLeft - b.msLeft);
}

/** "3 d", "5 h", "12 min" */
export function humanDuration(ms: number): string {
  const a = Math.abs(ms);
  if (a >= 2 * 86_400_000) return `${Math.floor(a / 86_400_000)} d`;
  if (a >= 2 * 3_600_000) return `${Math.floor(a / 3_600_000)} h`;
  return `${Math.max(1, Math.floor(a / 60_000))} min`;
}
