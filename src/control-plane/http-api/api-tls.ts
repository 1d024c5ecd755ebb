// The API's TLS: a server certificate for this replica from the mesh CA (the control plane's SPIFFE ID plus the host
// names and addresses clients use), renewed at half-life, and the trust bundle that client certificates must chain to.
// Each change installs a new secure context; connections already open keep theirs.

import { constants } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type tls from 'node:tls';
import { controlPlaneSpiffeId } from '../../api/v1alpha1/cert-auth.js';
import type { Logger } from '../../core/log.js';
import type { MeshCa } from '../ca/mesh-ca.js';

/** The server certificate lives a day (like a workload leaf) and is renewed at half-life. */
const LIFETIME_SECONDS = 86_400;

export interface ApiTlsOptions {
  ca: MeshCa;
  /** Installs new options on the TLS server (for new handshakes). */
  apply: (options: tls.SecureContextOptions) => void;
  trustDomain: () => string;
  /** Host names and addresses beyond localhost, 127.0.0.1 and ::1: the listen address, the advertised host. */
  hosts: string[];
  log: Logger;
  /** Each new certificate (first and renewals): for the expiry gauge and the replica's announcement. */
  onIssued?: (c: { notAfter: number; issuedAt: number }) => void;
}

export class ApiTls {
  private current: { certChain: string; keyPem: string; notAfter: number; issuedAt: number; bundle: string; root: string } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly o: ApiTlsOptions) {}

  /** Whether a certificate is installed (handshakes before that cannot succeed). */
  get ready(): boolean {
    return this.current !== null;
  }

  get notAfter(): number | null {
    return this.current?.notAfter ?? null;
  }

  /**
   * Names the certificate answers for: loopback, this host's name, the given hosts, and for a wildcard listen address
   * every address of this host (other hosts reach it on those).
   */
  names(): { dnsNames: string[]; ips: string[] } {
    const dns = new Set(['localhost']);
    const ips = new Set(['127.0.0.1', '::1']);
    const wildcard = this.o.hosts.some((h) => h === '0.0.0.0' || h === '::' || h === '[::]');
    const local = wildcard ? Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, ''))) : [];
    for (const h of [...this.o.hosts, hostname(), ...local]) {
      const bare = h.replace(/^\[|\]$/g, '');
      if (bare === '' || bare === '0.0.0.0' || bare === '::') continue;
      if (isIP(bare) !== 0) ips.add(bare);
      else dns.add(bare.toLowerCase());
    }
    return { dnsNames: [...dns], ips: [...ips] };
  }

  /** Issues the first certificate (throws when this replica cannot issue) and schedules renewals. */
  async start(): Promise<void> {
    await this.issue();
  }

  private async issue(): Promise<void> {
    const root = this.o.ca.state().active;
    const cert = await this.o.ca.serverCertificate({ spiffeId: controlPlaneSpiffeId(this.o.trustDomain()), ...this.names(), lifetimeSeconds: LIFETIME_SECONDS });
    this.current = { ...cert, issuedAt: Date.now(), bundle: this.o.ca.bundle(), root };
    this.rebuild();
    this.o.onIssued?.({ notAfter: cert.notAfter, issuedAt: this.current.issuedAt });
    this.o.log.info('API server certificate issued', { notAfter: new Date(cert.notAfter).toISOString(), ...this.names() });
    this.schedule((cert.notAfter - Date.now()) / 2);
  }

  private schedule(inMs: number): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.issue().catch((err: unknown) => {
        this.o.log.error('API server certificate renewal failed; retrying in 30 s', { reason: (err as Error).message });
        this.schedule(30_000);
      });
    }, Math.max(0, Math.min(inMs, 2 ** 31 - 1)));
    this.timer.unref();
  }

  /**
   * The CA state changed: client certificates are checked against the new bundle, and once another root issues the
   * server certificate is reissued from it (so that it never depends on a root that is about to leave the bundle).
   */
  caChanged(): void {
    const c = this.current;
    if (c === null) return;
    const bundle = this.o.ca.bundle();
    if (bundle !== c.bundle) {
      this.current = { ...c, bundle };
      this.rebuild();
    }
    if (this.o.ca.state().active !== c.root) {
      void this.issue().catch((err: unknown) => this.o.log.warn('API server certificate reissue failed', { reason: (err as Error).message }));
    }
  }

  private rebuild(): void {
    const c = this.current as NonNullable<ApiTls['current']>;
    // No session tickets: a resumed session would carry no client chain to check (and no fresh proof of it).
    this.o.apply({ cert: c.certChain, key: c.keyPem, ca: c.bundle, secureOptions: constants.SSL_OP_NO_TICKET, minVersion: 'TLSv1.2' });
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}
