// The service registry: endpoints registered by sidecars over their config stream, held under a lease that each
// message renews. A lapsed lease or a clean goodbye removes the endpoint from the store, and so from every view; a lapsed
// lease does not when another replica has registered the endpoint since (its proxy moved there).

import type { Logger } from '../../core/log.js';
import type { EndpointRecord } from '../translate/mesh-index.js';
import { StoreError, type Store } from '../store/store.js';

export const ENDPOINT_KIND = 'Endpoint';
/** A sweep this much later than due means the replica stalled (a timer's usual lateness is a few milliseconds). */
const STALL_MS = 1000;

interface Lease {
  record: EndpointRecord;
  /** Renewed by every message from the proxy; when it passes, the endpoint goes. */
  expiresAt: number;
  /** The proxy's stream is open on this replica. */
  attached: boolean;
}

export interface RegistryOptions {
  store: Store;
  replica: string;
  leaseMs: number;
  log: Logger;
  /**
   * Whether this replica also expires endpoints it did not register itself (restored from the store at start). True for
   * the file store, which has no leases of its own; false for etcd, where each replica's lease expires its own entries.
   */
  expireRestored: boolean;
  now?: () => number;
}

export class Registry {
  private readonly leases = new Map<string, Lease>();
  /** Endpoints found in the store at start that no proxy has claimed yet, with the time they expire. */
  private readonly restored = new Map<string, { namespace: string; expiresAt: number }>();
  private timer: NodeJS.Timeout | null = null;
  private tickMs = 0;
  private lastTick = 0;
  private readonly now: () => number;

  constructor(private readonly o: RegistryOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Takes over what the store already holds: each restored endpoint gets one lease period to be claimed again. */
  start(): void {
    if (this.o.expireRestored) {
      const deadline = this.now() + this.o.leaseMs;
      for (const e of this.o.store.list(ENDPOINT_KIND)) this.restored.set(e.name, { namespace: e.namespace, expiresAt: deadline });
    }
    this.tickMs = Math.max(50, Math.min(1000, Math.floor(this.o.leaseMs / 5)));
    this.lastTick = this.now();
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
  }

  /**
   * The sweep timer's turn (public for tests). A turn far later than due means this replica itself did not run (a
   * blocked event loop, a stopped process, a paused VM): it read no heartbeats meanwhile, so the time it missed is
   * added to every lease instead of expiring, at once, every endpoint whose proxy was heartbeating all along.
   */
  tick(): Promise<void> {
    const now = this.now();
    const missed = now - this.lastTick - this.tickMs;
    this.lastTick = now;
    if (missed >= STALL_MS) {
      for (const lease of this.leases.values()) lease.expiresAt += missed;
      for (const r of this.restored.values()) r.expiresAt += missed;
      this.o.log.warn('this replica did not run for a while (event loop blocked or process stopped); endpoint leases extended by that time', { missedMs: missed, leases: this.leases.size });
    }
    return this.sweep();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Registers (or refreshes) an endpoint; resolves once it is durable. Skips the write when nothing changed. */
  async register(record: EndpointRecord): Promise<void> {
    const id = record.proxyId;
    this.restored.delete(id);
    const lease = this.leases.get(id);
    const expiresAt = this.now() + this.o.leaseMs;
    const stored = this.o.store.get(ENDPOINT_KIND, record.namespace, id);
    this.leases.set(id, { record, expiresAt, attached: true });
    if (lease !== undefined && stored !== undefined && sameRecord(stored.value as EndpointRecord, record)) return;
    await this.o.store.commit([{ op: 'put', kind: ENDPOINT_KIND, namespace: record.namespace, name: id, value: record, ephemeral: true }]);
  }

  renew(proxyId: string): void {
    const lease = this.leases.get(proxyId);
    if (lease !== undefined) lease.expiresAt = this.now() + this.o.leaseMs;
  }

  /** The stream closed without a goodbye: the lease runs out unless the proxy reconnects in time. */
  detach(proxyId: string): void {
    const lease = this.leases.get(proxyId);
    if (lease !== undefined) lease.attached = false;
  }

  /** A clean shutdown: gone from every view now. */
  async deregister(proxyId: string): Promise<void> {
    const lease = this.leases.get(proxyId);
    if (lease === undefined) return;
    this.leases.delete(proxyId);
    await this.remove(lease.record.namespace, proxyId, 'goodbye');
  }

  async setReady(proxyId: string, ready: boolean): Promise<void> {
    const lease = this.leases.get(proxyId);
    if (lease === undefined || lease.record.ready === ready) return;
    await this.register({ ...lease.record, ready });
  }

  leaseOf(proxyId: string): { expiresAt: number; attached: boolean } | undefined {
    const l = this.leases.get(proxyId);
    return l === undefined ? undefined : { expiresAt: l.expiresAt, attached: l.attached };
  }

  /** Deletes the endpoint; with `revision`, only if nobody wrote it since (a conflict leaves it to whoever did). */
  private async remove(namespace: string, proxyId: string, why: string, revision?: number): Promise<void> {
    if (this.o.store.get(ENDPOINT_KIND, namespace, proxyId) === undefined) return;
    const expect = revision === undefined ? [] : [{ kind: ENDPOINT_KIND, namespace, name: proxyId, revision }];
    try {
      await this.o.store.commit([{ op: 'delete', kind: ENDPOINT_KIND, namespace, name: proxyId }], expect);
      this.o.log.info('endpoint deregistered', { proxyId, namespace, why });
    } catch (err) {
      if (err instanceof StoreError && err.code === 'conflict') return;
      // The next sweep tries again; the endpoint stays visible until the store takes the delete.
      this.o.log.warn('could not deregister an endpoint; will retry', { proxyId, why, reason: (err as Error).message });
      throw err;
    }
  }

  private sweeping = false;

  /** Removes endpoints whose lease ran out. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = this.now();
      for (const [id, lease] of this.leases) {
        if (lease.expiresAt > now) continue;
        this.leases.delete(id);
        const stored = this.o.store.get(ENDPOINT_KIND, lease.record.namespace, id);
        // The proxy moved to another replica, which registered it again: that replica's lease decides now.
        if (stored === undefined || (stored.value as EndpointRecord).replica !== this.o.replica) continue;
        await this.remove(lease.record.namespace, id, lease.attached ? 'no heartbeat within the lease' : 'lease lapsed after the stream closed', stored.revision).catch(() => {
          if (!this.leases.has(id)) this.leases.set(id, { ...lease, expiresAt: 0 });
        });
      }
      for (const [id, r] of this.restored) {
        if (r.expiresAt > now) continue;
        this.restored.delete(id);
        await this.remove(r.namespace, id, 'restored at start and not claimed within the lease').catch(() => this.restored.set(id, r));
      }
    } finally {
      this.sweeping = false;
    }
  }
}

function sameRecord(a: EndpointRecord, b: EndpointRecord): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
