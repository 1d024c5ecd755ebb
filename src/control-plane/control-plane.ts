// One control-plane replica: opens the store, indexes it, serves the API and the proxies' config streams, keeps the
// registry's leases, and pushes each change to the proxies whose views it touches. This file only wires.

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration } from '../api/v1alpha1/duration.js';
import { encodeMessage, RECONNECT_BACKOFF_MAX_MS, STATS_INTERVAL_MS } from '../api/v1alpha1/stream-messages.js';
import type { Logger } from '../core/log.js';
import type { CaMaterial } from '../security/dev-ca.js';
import { SECRET_KIND, sweepSpentTokens, TokenAuthority, USED_TOKEN_KIND } from './auth/tokens.js';
import { bundleOf, CA_KIND, readCaState } from './ca/ca-state.js';
import { MeshCa } from './ca/mesh-ca.js';
import { createApiServer } from './http-api/server.js';
import { ApiTls } from './http-api/api-tls.js';
import { trustDomainOf } from './http-api/ca-routes.js';
import { ControlTrust } from '../security/control-trust.js';
import type { SecureContextOptions } from 'node:tls';
import { ControlMetrics } from './metrics.js';
import { PushServer } from './push/push-server.js';
import { Registry } from './registry/registry.js';
import { SignalWindow } from './stats/signal-window.js';
import { announceReplica, otherReplicas, REPLICA_KIND, withdrawReplica, type ReplicaRecord } from './replicas.js';
import type { Store } from './store/store.js';
import { MeshIndex } from './translate/mesh-index.js';
import { TraceBuffer } from './traces/trace-buffer.js';

/** How often spent single-use token records are swept (they are small; an hour late costs nothing). */
const TOKEN_SWEEP_MS = 10 * 60_000;

export interface ControlPlaneOptions {
  store: Store;
  listen: { host: string; port: number };
  /** Where the admin token and the address file go (`.mycel` by default), for the CLI on this machine. */
  stateDir: string | null;
  leaseMs?: number;
  heartbeatMs?: number;
  /** Whether the registry expires restored endpoints itself (file store) or the store's leases do (etcd). */
  expireRestored: boolean;
  /** The URL other replicas reach this one on (default: the listen address, loopback for a wildcard). */
  advertiseUrl?: string;
  /** The mesh CA: a supplied root or intermediate (--ca-cert/--ca-key), and where this replica keeps CA keys (default: stateDir/ca). */
  ca?: { supplied?: CaMaterial; dir?: string };
  /** Serve the API in clear text (tests, or TLS terminated in front); default: TLS with a certificate from the mesh CA. */
  insecureHttp?: boolean;
  /**
   * Warm-up after a start with no other replica alive (see push/warm-up.ts); 0 turns it off. Default: the proxies'
   * reconnect backoff bound plus one lease, by when every sidecar that survived the outage has re-registered.
   */
  warmupMs?: number;
  /** How often proxies send their golden-signal summaries (default 10 s). */
  statsIntervalMs?: number;
  log: Logger;
}

export class ControlPlane {
  readonly replica = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  readonly metrics = new ControlMetrics();
  /** The proxies' golden signals of the last 10 minutes (GET /api/v1/stats, mycel stat). */
  readonly stats = new SignalWindow();
  private readonly index = new MeshIndex(new Set([SECRET_KIND, REPLICA_KIND, USED_TOKEN_KIND, CA_KIND]));
  /** Recent traces received over OTLP (served by GET /api/v1/traces). */
  readonly traces = new TraceBuffer();
  private tokens: TokenAuthority | undefined;
  private ca: MeshCa | undefined;
  private trust: { revision: number; message: string } | undefined;
  private ready = false;
  private unwatch: (() => void) | null = null;
  private server!: Server;
  private apiTls: ApiTls | null = null;
  private apiCertificate: { notAfter: number; issuedAt: number } | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private announcement: ReplicaRecord | undefined;
  private setSecureContext: (o: SecureContextOptions) => void = () => {};
  /** Verifies the other replicas' API certificates (the trust bundle); plain fetch with --insecure-http. */
  private readonly peers = new ControlTrust();
  private push!: PushServer;
  private registry!: Registry;
  address!: { host: string; port: number };

  private constructor(private readonly o: ControlPlaneOptions) {}

  static async start(o: ControlPlaneOptions): Promise<ControlPlane> {
    const cp = new ControlPlane(o);
    await cp.run();
    return cp;
  }

  private get scheme(): string {
    return this.o.insecureHttp === true ? 'http' : 'https';
  }

  get url(): string {
    const h = this.address.host.includes(':') ? `[${this.address.host}]` : this.address.host;
    return `${this.scheme}://${h}:${this.address.port}`;
  }

  adminToken(): string {
    if (this.tokens === undefined) throw new Error('not started');
    return this.tokens.adminToken();
  }

  private async run(): Promise<void> {
    const o = this.o;
    const leaseMs = o.leaseMs ?? 10_000;
    const heartbeatMs = o.heartbeatMs ?? Math.floor(leaseMs / 3);
    this.registry = new Registry({ store: o.store, replica: this.replica, leaseMs, log: o.log, expireRestored: o.expireRestored });
    this.push = new PushServer({ store: o.store, index: this.index, registry: this.registry, replica: this.replica, heartbeatMs, leaseMs, metrics: this.metrics, stats: this.stats, statsIntervalMs: o.statsIntervalMs ?? STATS_INTERVAL_MS, log: o.log, trust: () => this.trustMessage() });
    const api = createApiServer({
      store: o.store,
      index: this.index,
      push: this.push,
      registry: this.registry,
      tokens: () => this.tokens,
      ca: () => this.ca,
      metrics: this.metrics,
      stats: this.stats,
      ready: () => this.ready,
      replica: this.replica,
      traces: this.traces,
      log: o.log,
      fetchOther: this.peers.fetch,
    }, o.insecureHttp === true ? { kind: 'plain' } : { kind: 'tls', ready: () => this.apiTls?.ready === true });
    this.server = api.server;
    this.setSecureContext = api.setSecureContext;
    // Listen first so that /healthz answers and /readyz says why it is not ready while the store loads.
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(o.listen.port, o.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    this.address = typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : o.listen;

    const started = Date.now();
    await o.store.open();
    // Index what is stored, then follow every change; no proxy is served before this point, so none ever sees the
    // empty state of a replica that has not loaded yet.
    this.index.load(o.store.list());
    this.unwatch = o.store.watch((events, revision) => {
      this.metrics.revision.set(revision);
      this.push.changed(this.index.apply(events));
      if (events.some((e) => (e.type === 'put' ? e.object.kind : e.kind) === CA_KIND)) {
        this.push.trustChanged();
        this.trustChanged();
      }
    });
    this.metrics.revision.set(o.store.revision());
    this.tokens = await TokenAuthority.fromStore(o.store);
    const caDir = o.ca?.dir ?? (o.stateDir !== null ? o.stateDir : await mkdtemp(join(tmpdir(), 'mycel-ca-')));
    this.ca = await MeshCa.open({ store: o.store, stateDir: caDir, replica: this.replica, log: o.log, rootLifetimeSeconds: this.rootLifetimeSeconds(), ...(o.ca?.supplied !== undefined ? { supplied: o.ca.supplied } : {}) });
    if (o.insecureHttp !== true) await this.startTls();
    this.registry.start();
    this.beginWarmup(o.warmupMs ?? defaultWarmupMs(leaseMs));
    this.announcement = { replica: this.replica, url: this.reachableUrl(), startedAt: new Date().toISOString(), ...(this.apiCertificate !== undefined ? { apiCertificate: this.apiCertificate } : {}) };
    await announceReplica(o.store, this.announcement, o.expireRestored);
    if (o.stateDir !== null) await this.writeStateFiles(o.stateDir);
    this.ready = true;
    this.sweepTimer = setInterval(() => this.sweepTokens(), TOKEN_SWEEP_MS).unref();
    this.sweepTokens();
    o.log.info('control plane ready', { replica: this.replica, url: this.url, store: o.store.description, revision: o.store.revision(), loadMs: Date.now() - started });
  }

  /**
   * Warm up only when no other replica is alive: a live one has kept the store's endpoints fresh (its proxies renew
   * them), so nothing is missing. With etcd, replicas announce themselves under their lease, so an announcement present
   * now means a replica ran within the last lease; the file store has one replica, and older announcements are its past.
   */
  private beginWarmup(ms: number): void {
    const live = this.o.expireRestored ? [] : otherReplicas(this.o.store, this.replica);
    if (live.length > 0) {
      this.o.log.info('no warm-up: another replica is alive, so the stored endpoints are current', { replicas: live.map((r) => r.replica) });
      return;
    }
    this.push.startWarmup(ms, 'no other control-plane replica was running; endpoints may have expired meanwhile');
  }

  /** The API's server certificate from the mesh CA (this replica must be able to issue: it holds a CA key). */
  private async startTls(): Promise<void> {
    const ca = this.ca as MeshCa;
    const hosts = [this.address.host, ...(this.o.advertiseUrl !== undefined ? [new URL(this.o.advertiseUrl).hostname] : [])];
    this.apiTls = new ApiTls({ ca, trustDomain: () => trustDomainOf({ index: this.index }), hosts, log: this.o.log, apply: (opts) => this.setSecureContext(opts), onIssued: (c) => this.apiCertificateIssued(c) });
    try {
      await this.apiTls.start();
    } catch (err) {
      throw new Error(`cannot get a TLS certificate for the API from the mesh CA: ${(err as Error).message}`);
    }
    this.peers.setRoots(ca.bundle());
  }

  /** Spent single-use token records whose token has expired are dropped (the store would otherwise only grow). */
  private sweepTokens(): void {
    void sweepSpentTokens(this.o.store).then(
      (n) => n > 0 && this.o.log.info('spent single-use token records of expired tokens removed', { count: n }),
      (err: unknown) => this.o.log.warn('could not sweep spent single-use token records', { reason: (err as Error).message }),
    );
  }

  /** A new API certificate: the gauge, and the announcement (so `mycel check` asked of any replica sees every one's). */
  private apiCertificateIssued(c: { notAfter: number; issuedAt: number }): void {
    this.apiCertificate = c;
    this.metrics.apiCertExpiry.set(Math.floor(c.notAfter / 1000));
    if (this.announcement === undefined || !this.ready) return;
    this.announcement = { ...this.announcement, apiCertificate: c };
    void announceReplica(this.o.store, this.announcement, false).catch((err: unknown) => this.o.log.warn('could not announce the renewed API certificate', { reason: (err as Error).message }));
  }

  /** A root was added or removed: client certificates, other replicas and the local CLI follow the new bundle. */
  private trustChanged(): void {
    if (this.ca === undefined || this.o.insecureHttp === true) return;
    this.apiTls?.caChanged();
    this.peers.setRoots(this.ca.bundle());
    if (this.o.stateDir !== null) void this.writeBundle(this.o.stateDir).catch((err: unknown) => this.o.log.warn('could not write the trust bundle file', { reason: (err as Error).message }));
  }

  /** `<state-dir>/ca.pem`: the mesh roots, which the CLI on this machine verifies the API with. */
  private async writeBundle(dir: string): Promise<void> {
    const file = join(dir, 'ca.pem');
    await writeFile(`${file}.tmp`, (this.ca as MeshCa).bundle());
    await rename(`${file}.tmp`, file);
  }

  /** MeshConfig certificates.rootLifetime (one year by default), for a root made on first start or by a rotation. */
  private rootLifetimeSeconds(): number {
    const text = (this.index.meshConfig()?.value as { spec?: { certificates?: { rootLifetime?: string } } } | undefined)?.spec?.certificates?.rootLifetime;
    const ms = text === undefined ? undefined : parseDuration(text);
    return ms === undefined ? 365 * 86_400 : Math.ceil(ms / 1000);
  }

  /** The trust message for proxies, encoded once per CA state revision. */
  private trustMessage(): string | undefined {
    const cur = readCaState(this.o.store);
    if (cur === undefined) return undefined;
    if (this.trust?.revision !== cur.revision) {
      this.trust = { revision: cur.revision, message: encodeMessage({ type: 'trust', bundle: bundleOf(cur.state), activeRoot: cur.state.active }) };
    }
    return this.trust.message;
  }

  /** The URL other replicas and local clients use: a wildcard listen address is reached on loopback. */
  private reachableUrl(): string {
    if (this.o.advertiseUrl !== undefined) return this.o.advertiseUrl;
    const host = this.address.host === '0.0.0.0' || this.address.host === '::' ? '127.0.0.1' : this.address.host;
    return `${this.scheme}://${host.includes(':') ? `[${host}]` : host}:${this.address.port}`;
  }

  /** `.mycel/admin-token` (0600) and `.mycel/control.json`, so that the CLI on this machine finds and may use this replica. */
  private async writeStateFiles(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tokenFile = join(dir, 'admin-token');
    await writeFile(`${tokenFile}.tmp`, this.adminToken() + '\n', { mode: 0o600 });
    await chmod(`${tokenFile}.tmp`, 0o600);
    await rename(`${tokenFile}.tmp`, tokenFile);
    if (this.o.insecureHttp !== true) await this.writeBundle(dir);
    await writeFile(join(dir, 'control.json'), JSON.stringify({ url: this.reachableUrl(), replica: this.replica, pid: process.pid }, null, 2) + '\n');
  }

  /**
   * A clean stop hands this replica's proxies over: their streams end (each moves to the next replica it knows), this
   * replica's announcement is withdrawn now, and the endpoints they registered stay until another replica takes them
   * over (its re-registration moves each to that replica's etcd lease) or this replica's lease lapses, whichever is
   * first. Revoking the lease instead would empty every service registered through this replica until its sidecars
   * reconnect: callers would fail with no-endpoints during an ordinary rolling restart.
   */
  async close(): Promise<void> {
    this.ready = false;
    clearInterval(this.sweepTimer);
    this.unwatch?.();
    this.registry.stop();
    this.push.close();
    this.apiTls?.close();
    this.peers.close();
    await withdrawReplica(this.o.store, this.replica).catch(() => {});
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      // Open config streams would hold close() forever; their proxies reconnect to another replica.
      setTimeout(resolve, 1000).unref();
    });
    await this.o.store.close({ revoke: false });
  }
}

/** The default warm-up: a surviving sidecar tries again within the backoff bound, and registers within one lease. */
export function defaultWarmupMs(leaseMs: number): number {
  return RECONNECT_BACKOFF_MAX_MS + leaseMs;
}
