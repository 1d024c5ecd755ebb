// How clients (the CLI, sidecars, other replicas) verify the control plane's TLS certificate: against the mesh roots
// from a file, or against the one root whose fingerprint a join token pins (fetched from the public bundle route and
// kept only if it matches), later the bundle the config stream sends. Optionally with a client certificate.

import { X509Certificate, createHash } from 'node:crypto';
import type { SecureClientSessionOptions } from 'node:http2';
import type * as UndiciLib from 'undici';
import type { Agent, fetch as undiciFetch } from 'undici';
import { splitPems } from './pem.js';

/** The public route that serves the current roots (no token: roots are not secret). */
export const BUNDLE_PATH = '/api/v1/ca/bundle';

export class ControlTrustError extends Error {}

export interface ControlTrustOptions {
  /** Mesh roots (PEM) to trust. */
  caPem?: string;
  /** Or: the SHA-256 fingerprint (hex) of the root to pin (from the join token). */
  rootFingerprint?: string;
}

type Undici = typeof UndiciLib;
let undici: Promise<Undici> | null = null;
/** undici, loaded on first use: a sidecar run from files never talks to a control plane (it weighs about 9 MiB). */
const loadUndici = (): Promise<Undici> => (undici ??= import('undici'));

const fingerprint = (pem: string): string => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');

export type FetchLike = (url: string, init?: Parameters<typeof undiciFetch>[1]) => ReturnType<typeof undiciFetch>;

export class ControlTrust {
  private ca: string | undefined;
  private client: { cert: string; key: string } | undefined;
  private agent: Agent | null = null;

  constructor(private readonly o: ControlTrustOptions = {}) {
    this.ca = o.caPem;
  }

  /** Whether there is anything to verify with yet (a pinned root must first be fetched by `bootstrap`). */
  get roots(): string | undefined {
    return this.ca;
  }

  /**
   * With only a pinned fingerprint: fetches the roots over an unverified connection and keeps the one whose
   * fingerprint matches (nothing is sent that matters, and every later connection is verified against that root).
   */
  async bootstrap(baseUrl: string): Promise<void> {
    if (this.ca !== undefined || !baseUrl.startsWith('https:')) return;
    const pin = this.o.rootFingerprint;
    if (pin === undefined) throw new ControlTrustError(`no mesh root to verify ${baseUrl} with: pass --ca FILE (or MYCEL_CA), or a join token from \`mycel token create\` (it carries the root's fingerprint)`);
    const { Agent, fetch } = await loadUndici();
    const blind = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const res = await fetch(baseUrl + BUNDLE_PATH, { dispatcher: blind, signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { trustBundle?: string };
      const match = splitPems(body.trustBundle ?? '').find((p) => fingerprint(p) === pin);
      if (match === undefined) throw new ControlTrustError(`the control plane at ${baseUrl} offers no root with fingerprint ${pin.slice(0, 16)}…: refusing it (is this the right control plane, and the token from it?)`);
      this.setRoots(match);
    } finally {
      void blind.close();
    }
  }

  /** A new trust bundle (from the config stream, which is itself verified). */
  setRoots(pem: string): void {
    if (pem === this.ca || splitPems(pem).length === 0) return;
    this.ca = pem;
    this.reset();
  }

  /** The TLS client certificate to present (a sidecar's workload certificate, an admin certificate). */
  setClientCertificate(cert: string, key: string): void {
    this.client = { cert, key };
    this.reset();
  }

  private reset(): void {
    const old = this.agent;
    this.agent = null;
    // Requests in flight finish on the old connections.
    if (old !== null) void old.close().catch(() => {});
  }

  /** TLS options for a direct connection (node:http2, node:https). */
  tlsOptions(): SecureClientSessionOptions {
    return { ...(this.ca !== undefined ? { ca: this.ca } : {}), ...(this.client ?? {}), minVersion: 'TLSv1.2' };
  }

  /** The undici dispatcher that verifies the control plane (for undici.request). */
  async dispatcher(): Promise<Agent> {
    const { Agent } = await loadUndici();
    this.agent ??= new Agent({ connect: this.tlsOptions(), allowH2: false });
    return this.agent;
  }

  /** fetch() that verifies the control plane (for http: URLs it is plain fetch). */
  readonly fetch: FetchLike = async (url, init) => {
    const [{ fetch }, dispatcher] = await Promise.all([loadUndici(), this.dispatcher()]);
    return fetch(url, { ...init, dispatcher });
  };

  close(): void {
    this.reset();
  }
}
