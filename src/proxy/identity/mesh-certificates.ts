// The sidecar's workload certificate from the mesh CA: the first one with the join token, renewals proved by the
// current key at the renewal point (with jitter, retried with backoff while the control plane is away, the current
// certificate serving until it expires), trust bundle updates from the config stream, and early renewal when the CA
// issues from another root. Key and chain are kept in memory, and under the state dir (key 0600) when one is given.

import { EventEmitter } from 'node:events';
import { X509Certificate, createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CERT_CHAIN_HEADER, certAuthData } from '../../api/v1alpha1/cert-auth.js';
import type { Logger } from '../../core/log.js';
import { ControlTrustError, type ControlTrust } from '../../security/control-trust.js';
import { makeDirectory, replaceFile } from '../../security/secret-files.js';
import { splitPems } from '../../security/pem.js';
import type { IdentityMaterial } from '../transport/tls/identity.js';
import { newKeyAndCsr, signWith } from '../../security/workload-key.js';

const CERTIFICATES_PATH = '/api/v1/certificates';

export interface MeshCertificatesOptions {
  url: string;
  /** Other control-plane replicas: a request that cannot reach one goes to the next in turn next time. */
  alternates?: string[];
  token: string;
  /** Verifies the control plane (and presents this proxy's certificate to it once there is one). */
  trust: ControlTrust;
  /** The identity this sidecar serves: a certificate for another one (a token of another service) is refused here. */
  namespace: string;
  service: string;
  /** Where key, chain and bundle are kept across restarts (null: memory only). */
  stateDir: string | null;
  log: Logger;
  /** Bounds of the retry backoff when the control plane does not answer. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface MeshCertificatesEvents {
  /** New key and chain, or a new trust bundle: the identity for new handshakes. */
  change: [IdentityMaterial];
}

/** The control plane refused to issue (bad, expired or used token, wrong service): an operator must act. */
export class CertificateRefusedError extends Error {}

interface Current {
  keyPem: string;
  chainPem: string;
  bundlePem: string;
  notAfter: number;
  issuedAt: number;
  /** Fingerprint of the root the chain leads to. */
  root: string;
  renewAt: number;
}

interface IssueAnswer {
  certChain: string;
  trustBundle: string;
  notAfter: number;
  spiffeId: string;
  root: string;
  activeRoot?: string;
  renewAt?: number;
  error?: string;
  message?: string;
}

const fingerprint = (pem: string): string => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

export class MeshCertificates extends EventEmitter<MeshCertificatesEvents> {
  private cur: Current | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  /** Which of url and alternates the next request goes to. */
  private urlIndex = 0;
  private renewing: Promise<void> | null = null;
  private closed = false;
  /** The root the CA issues from now, as last heard; a chain from another root is renewed early. */
  private activeRoot: string | null = null;

  constructor(private readonly o: MeshCertificatesOptions) {
    super();
  }

  get material(): IdentityMaterial {
    if (this.cur === null) throw new Error('no certificate yet');
    return { certPem: this.cur.chainPem, keyPem: this.cur.keyPem, caPem: this.cur.bundlePem };
  }

  /** What the proxy reports on its config stream: expiry, its root, the roots it trusts. */
  report(): { notAfter: number; issuedAt: number; root: string; trustedRoots: string[] } | null {
    const c = this.cur;
    if (c === null) return null;
    return { notAfter: c.notAfter, issuedAt: c.issuedAt, root: c.root, trustedRoots: splitPems(c.bundlePem).map(fingerprint) };
  }

  /** Headers that authenticate this proxy by its certificate (the config stream), fresh for each connection. */
  authorization(): Record<string, string> | null {
    const c = this.cur;
    if (c === null || c.notAfter <= Date.now()) return null;
    const t = Date.now();
    return { authorization: `Mycel-Cert ${t}.${signWith(c.keyPem, certAuthData(t))}`, [CERT_CHAIN_HEADER]: Buffer.from(c.chainPem).toString('base64') };
  }

  /**
   * The first certificate: a persisted one renewed by proof (a restart), else one for the join token. Retries while the
   * control plane cannot be reached; a refusal throws CertificateRefusedError.
   */
  async obtain(): Promise<IdentityMaterial> {
    const saved = await this.readPersisted();
    if (saved !== null) {
      this.cur = saved;
      // The bundle kept from the last run verifies the control plane as well as a pinned root would.
      if (this.o.trust.roots === undefined) this.o.trust.setRoots(saved.bundlePem);
    }
    // Bounded like everything else; at the backoff's ceiling this is days of trying.
    for (let attempt = 0; attempt < 100_000; attempt++) {
      try {
        await this.request(this.cur !== null && this.cur.notAfter > Date.now());
        return this.material;
      } catch (err) {
        if (err instanceof ControlTrustError) throw new CertificateRefusedError(err.message);
        if (err instanceof CertificateRefusedError) {
          if (this.cur === null) throw err;
          // A persisted certificate the CA no longer accepts (its root was removed): try the token once.
          this.o.log.warn('the control plane refused to renew the saved certificate; trying the join token', { reason: err.message });
          this.cur = null;
          continue;
        }
        const delay = this.backoff(attempt);
        this.o.log.warn('cannot get a certificate from the control plane yet; retrying', { url: this.o.url, reason: (err as Error).message, retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay));
        if (this.closed) throw new Error('closed');
      }
    }
    throw new Error(`no certificate from ${this.o.url} after many attempts`);
  }

  /** Starts the renewal schedule (after obtain). */
  start(): void {
    this.schedule();
  }

  /** The trust bundle and active root from the control plane's config stream. */
  trust(bundlePem: string, activeRoot: string): void {
    const c = this.cur;
    this.activeRoot = activeRoot;
    if (c === null) return;
    if (bundlePem !== c.bundlePem && splitPems(bundlePem).length > 0) {
      this.cur = { ...c, bundlePem };
      this.o.trust.setRoots(bundlePem);
      this.o.log.info('trust bundle updated', { roots: splitPems(bundlePem).length, activeRoot: activeRoot.slice(0, 16) });
      void this.persist();
      this.emit('change', this.material);
    }
    // Leaves from another root are reissued early, so that the old root can leave the bundle soon.
    if (c.root !== activeRoot) this.renewSoon();
  }

  private renewSoon(): void {
    if (this.renewing !== null || this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    // A little jitter so that every proxy does not hit the CA in the same millisecond.
    this.timer = setTimeout(() => void this.renew(), Math.random() * 1000);
    this.timer.unref();
  }

  private schedule(): void {
    if (this.closed || this.cur === null) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const c = this.cur;
    const lifetime = c.notAfter - c.issuedAt;
    // Renew at the renewal point minus up to 10% of the lifetime, so that proxies started together spread out.
    const at = c.issuedAt + lifetime * c.renewAt - Math.random() * lifetime * 0.1;
    this.timer = setTimeout(() => void this.renew(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private renew(): Promise<void> {
    if (this.renewing !== null) return this.renewing;
    this.renewing = (async () => {
      try {
        const valid = this.cur !== null && this.cur.notAfter > Date.now();
        await this.request(valid);
        this.failures = 0;
        this.schedule();
      } catch (err) {
        const delay = this.backoff(this.failures++);
        const c = this.cur;
        this.o.log[c !== null && c.notAfter - Date.now() < delay ? 'error' : 'warn']('certificate renewal failed; serving with the current one and retrying', {
          reason: (err as Error).message,
          retryInMs: delay,
          expires: c === null ? null : new Date(c.notAfter).toISOString(),
        });
        if (this.timer !== null) clearTimeout(this.timer);
        if (!this.closed) {
          this.timer = setTimeout(() => void this.renew(), delay);
          this.timer.unref();
        }
      } finally {
        this.renewing = null;
      }
    })();
    return this.renewing;
  }

  /** Full jitter over an exponential window, scaled to the certificate's lifetime so that short-lived test certs retry fast. */
  private backoff(attempt: number): number {
    const lifetime = this.cur === null ? 60_000 : this.cur.notAfter - this.cur.issuedAt;
    const min = this.o.retryMinMs ?? Math.min(1000, Math.max(50, lifetime / 40));
    const max = this.o.retryMaxMs ?? Math.min(30_000, Math.max(min, lifetime / 8));
    const window = Math.min(max, min * 2 ** Math.min(attempt, 16));
    return Math.round(min + Math.random() * (window - min));
  }

  /** One issuance: a new key, its CSR, proved by the current key when `byProof`, else by the join token. */
  private async request(byProof: boolean): Promise<void> {
    const fresh = await newKeyAndCsr();
    const c = this.cur;
    const body = byProof && c !== null ? { csr: fresh.csrPem, certChain: c.chainPem, proof: signWith(c.keyPem, fresh.csrDer) } : { csr: fresh.csrPem };
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (!byProof) headers.authorization = `Bearer ${this.o.token}`;
    const urls = [this.o.url, ...(this.o.alternates ?? [])];
    const url = urls[this.urlIndex % urls.length]!;
    let res: Awaited<ReturnType<ControlTrust['fetch']>>;
    try {
      await this.o.trust.bootstrap(url);
      res = await this.o.trust.fetch(url + CERTIFICATES_PATH, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      // Unreachable (or silent): the next try asks the next replica.
      this.urlIndex++;
      throw err;
    }
    const text = await res.text();
    let answer: IssueAnswer;
    try {
      answer = JSON.parse(text) as IssueAnswer;
    } catch {
      throw new Error(`the control plane answered ${res.status} with a body that is not JSON`);
    }
    if (res.status === 401 || res.status === 403 || res.status === 400) {
      throw new CertificateRefusedError(`the control plane refused the certificate request (${res.status} ${answer.error ?? ''}): ${answer.message ?? text.slice(0, 300)}`);
    }
    if (res.status !== 200) throw new Error(`the control plane answered ${res.status}: ${answer.message ?? text.slice(0, 300)}`);
    const wanted = `/ns/${this.o.namespace}/svc/${this.o.service}`;
    if (!answer.spiffeId.endsWith(wanted)) {
      throw new CertificateRefusedError(`the join token is for ${answer.spiffeId}, not for ${this.o.namespace}/${this.o.service}`);
    }
    const issuedAt = Date.now();
    this.cur = { keyPem: fresh.keyPem, chainPem: answer.certChain, bundlePem: answer.trustBundle, notAfter: answer.notAfter, issuedAt, root: answer.root, renewAt: answer.renewAt ?? 0.5 };
    this.o.log.info('workload certificate issued', { via: byProof ? 'renewal' : 'join token', expires: new Date(answer.notAfter).toISOString(), root: answer.root.slice(0, 16) });
    // The answer came over a verified connection: its bundle now verifies the control plane, and the new
    // certificate is this proxy's TLS client certificate towards it.
    this.o.trust.setRoots(answer.trustBundle);
    this.o.trust.setClientCertificate(answer.certChain, fresh.keyPem);
    await this.persist();
    this.emit('change', this.material);
    if (answer.activeRoot !== undefined) this.activeRoot = answer.activeRoot;
  }

  private get dir(): string | null {
    return this.o.stateDir === null ? null : join(this.o.stateDir, 'identity');
  }

  private async persist(): Promise<void> {
    const dir = this.dir;
    const c = this.cur;
    if (dir === null || c === null) return;
    try {
      await makeDirectory(dir, 0o700);
      await replaceFile(join(dir, 'key.pem'), c.keyPem, 0o600);
      await replaceFile(join(dir, 'chain.pem'), c.chainPem, 0o644);
      await replaceFile(join(dir, 'bundle.pem'), c.bundlePem, 0o644);
      await replaceFile(join(dir, 'meta.json'), JSON.stringify({ notAfter: c.notAfter, issuedAt: c.issuedAt, root: c.root, renewAt: c.renewAt }), 0o644);
    } catch (err) {
      this.o.log.warn('could not keep the certificate on disk; a restart will need the join token again', { dir, reason: (err as Error).message });
    }
  }

  private async readPersisted(): Promise<Current | null> {
    const dir = this.dir;
    if (dir === null) return null;
    try {
      const [keyPem, chainPem, bundlePem, meta] = await Promise.all(['key.pem', 'chain.pem', 'bundle.pem', 'meta.json'].map((f) => readFile(join(dir, f), 'utf8')));
      const m = JSON.parse(meta as string) as { notAfter: number; issuedAt: number; root: string; renewAt: number };
      return { keyPem: keyPem as string, chainPem: chainPem as string, bundlePem: bundlePem as string, notAfter: m.notAfter, issuedAt: m.issuedAt, root: m.root, renewAt: m.renewAt };
    } catch {
      return null;
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }
}
