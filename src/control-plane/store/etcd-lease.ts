// The one etcd lease of a store replica: granted on first use, kept alive over a keepalive stream, replaced when etcd
// says it lapsed (the replica was cut off for longer than the TTL). On close it is left to lapse (keys another replica
// has re-put meanwhile are under that replica's lease and stay), or revoked when the replica's keys must go at once.

import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import type { Logger } from '../../core/log.js';
import { follow, isLeaseNotFound, reasonOf, retryDelay, sleep, type EtcdConnection } from './etcd-connection.js';

export class EtcdLease {
  private leaseId: string | undefined;
  private granting: Promise<string> | undefined;
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  /** Every lease this replica was granted, to tell its own keys from those another replica attached. */
  private readonly granted = new Set<string>();
  private readonly stopping = new AbortController();

  /** `replaced` runs with the new lease after a lapsed one was replaced, to attach the replica's keys again. */
  constructor(
    private readonly conn: EtcdConnection,
    private readonly ttlSeconds: number,
    /** How long one grant may wait for etcd. */
    private readonly timeoutMs: number,
    private readonly log: Logger,
    private readonly replaced: (id: string) => void,
  ) {}

  /** The lease to attach keys to, granted now if there is none; rejects if etcd does not grant one by `deadline`. */
  current(deadline: number): Promise<string> {
    if (this.closed) return Promise.reject(new Error('the store was closed'));
    if (this.leaseId !== undefined) return Promise.resolve(this.leaseId);
    this.granting ??= this.grant(deadline).finally(() => {
      this.granting = undefined;
    });
    return this.granting;
  }

  /** The lease in use, if one is granted. */
  get id(): string | undefined {
    return this.leaseId;
  }

  /** True for a lease this replica was granted (now or before a lapse). */
  owns(id: string): boolean {
    return this.granted.has(id);
  }

  /** etcd does not know lease `id` any more (it expired): drop it and grant a new one in the background. */
  lost(id: string): void {
    if (this.closed || id !== this.leaseId) return;
    this.log.warn('etcd lease lapsed; granting a new one and attaching this replica\'s ephemeral objects to it', { lease: id });
    this.leaseId = undefined;
    this.stopKeepalive();
    this.failures = 0;
    void this.regrant();
  }

  /**
   * Stops the keepalive: the lease lapses after its TTL, and etcd then deletes the keys still attached to it. With
   * `revoke`, etcd deletes them now.
   */
  async close(deadline: number, revoke: boolean): Promise<void> {
    this.closed = true;
    this.stopping.abort();
    this.stopKeepalive();
    const id = this.leaseId;
    this.leaseId = undefined;
    if (id === undefined) return;
    if (!revoke) {
      this.log.info('etcd lease left to lapse: keys not taken over by another replica go when it expires', { lease: id, ttlSeconds: this.ttlSeconds });
      return;
    }
    try {
      await this.conn.client.leaseClient.leaseRevoke({ ID: id }, this.conn.call(deadline));
    } catch (err) {
      if (!isLeaseNotFound(err)) {
        this.log.warn('could not revoke the etcd lease; this replica\'s ephemeral objects vanish when it expires', { lease: id, ttlSeconds: this.ttlSeconds, reason: reasonOf(err) });
      }
    }
  }

  private async grant(deadline: number): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.conn.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }, this.conn.call(deadline));
        if (this.closed) {
          // close() ran while the grant was in flight: do not leave the new lease to expire on its own.
          await this.conn.client.leaseClient.leaseRevoke({ ID: res.ID }, this.conn.call(Date.now() + 1000)).catch(() => undefined);
          throw new Error('the store was closed');
        }
        this.leaseId = res.ID;
        this.granted.add(res.ID);
        this.startKeepalive();
        return res.ID;
      } catch (err) {
        // A grant that may have happened is harmless to repeat: the unused lease expires after its TTL.
        const delay = retryDelay(attempt);
        if (this.closed || Date.now() + delay >= deadline) throw err;
        await sleep(delay, this.stopping.signal);
      }
    }
  }

  /** After a lapse: grants until it succeeds (etcd may still be unreachable), then hands the new lease to the owner. */
  private async regrant(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const id = await this.current(Date.now() + this.timeoutMs);
        this.replaced(id);
        return;
      } catch (err) {
        if (this.closed) return;
        if (attempt === 0) this.log.warn('cannot grant a new etcd lease yet; retrying', { reason: reasonOf(err) });
        await sleep(retryDelay(attempt, 100, 2000), this.stopping.signal);
      }
    }
  }

  private startKeepalive(): void {
    const generation = ++this.generation;
    this.conn.client.leaseClient.leaseKeepAlive(this.conn.stream()).then(
      (stream) => {
        if (generation !== this.generation) {
          stream.end();
          return;
        }
        this.stream = stream;
        follow(stream, 'keepalive', () => generation === this.generation, (res) => this.onKeepalive(res), (err) => this.keepaliveBroken(err));
        this.sendKeepalive(stream);
        // The Go client's rhythm: a keepalive every third of the TTL.
        this.timer = setInterval(() => this.sendKeepalive(stream), (this.ttlSeconds * 1000) / 3);
      },
      (err: unknown) => {
        if (generation === this.generation) this.keepaliveBroken(err);
      },
    );
  }

  private onKeepalive(res: ILeaseKeepAliveResponse): void {
    if (Number(res.TTL) <= 0) {
      this.lost(res.ID);
      return;
    }
    if (this.failures > 0) this.log.info('etcd lease keepalive restored', { lease: res.ID });
    this.failures = 0;
  }

  private sendKeepalive(stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>): void {
    if (this.leaseId !== undefined) stream.write({ ID: this.leaseId });
  }

  private keepaliveBroken(err: unknown): void {
    this.stopKeepalive();
    if (this.closed || this.leaseId === undefined) return;
    if (this.failures === 0) this.log.warn('etcd lease keepalive broken; reconnecting', { lease: this.leaseId, reason: reasonOf(err) });
    const delay = retryDelay(this.failures, 50, 1000);
    this.failures++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed && this.leaseId !== undefined) this.startKeepalive();
    }, delay);
  }

  private stopKeepalive(): void {
    this.generation++;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      clearInterval(this.timer);
    }
    this.timer = undefined;
    const s = this.stream;
    this.stream = undefined;
    s?.end();
  }
}
