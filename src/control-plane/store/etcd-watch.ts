// Follows every change in one etcd key range over a watch stream. After a broken stream it reconnects (to any member)
// from the revision after the last event it delivered, so no change is lost or delivered twice.

import type { IDuplexStream, IEvent, IWatchRequest, IWatchResponse } from 'etcd3';
import type { Logger } from '../../core/log.js';
import { follow, reasonOf, retryDelay, type EtcdConnection } from './etcd-connection.js';

export interface RangeWatchHandler {
  /** Events of one or more whole revisions, oldest first. */
  events(events: readonly IEvent[]): void;
  /** The revision to resume from was compacted away: the watch has stopped; the owner reloads and starts it again. */
  compacted(compactRevision: number): void;
}

export class RangeWatch {
  private next = 0;
  private running = false;
  /** Bumped whenever the current stream is abandoned, so that its late callbacks are ignored. */
  private generation = 0;
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly conn: EtcdConnection,
    private readonly range: { start: Buffer; end: Buffer },
    private readonly handler: RangeWatchHandler,
    private readonly log: Logger,
  ) {}

  /** Watches every change from `revision` on. */
  start(revision: number): void {
    this.stop();
    this.next = revision;
    this.running = true;
    this.failures = 0;
    this.connect();
  }

  stop(): void {
    this.running = false;
    this.abandon();
  }

  /** Drops the current stream and connects again at once, e.g. when it seems stuck on a member cut off from the rest. */
  reconnect(): void {
    if (!this.running) return;
    this.abandon();
    this.connect();
  }

  private abandon(): void {
    this.generation++;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const s = this.stream;
    this.stream = undefined;
    s?.cancel();
  }

  private connect(): void {
    const generation = this.generation;
    this.conn.client.watchClient.watch(this.conn.stream()).then(
      (stream) => {
        if (generation !== this.generation) {
          stream.cancel();
          return;
        }
        this.stream = stream;
        follow(stream, 'watch', () => generation === this.generation, (res) => this.onResponse(res), (err) => this.broken(err));
        stream.write({ create_request: { key: this.range.start, range_end: this.range.end, start_revision: this.next, progress_notify: true } });
      },
      (err: unknown) => {
        if (generation === this.generation) this.broken(err);
      },
    );
  }

  private onResponse(res: IWatchResponse): void {
    const compactRevision = Number(res.compact_revision);
    if (res.canceled && compactRevision > 0) {
      this.log.warn('etcd compacted the revisions this replica had not seen yet; reloading everything', { from: this.next, compactRevision });
      this.stop();
      this.handler.compacted(compactRevision);
      return;
    }
    if (res.canceled) {
      this.broken(new Error(`etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`));
      return;
    }
    if (res.created) {
      if (this.failures > 0) this.log.info('etcd watch restored', { from: this.next });
      this.failures = 0;
      return;
    }
    if (res.events.length > 0) {
      // Not the header revision: while catching up, etcd sends old events under the current header revision.
      this.next = Number((res.events[res.events.length - 1] as IEvent).kv.mod_revision) + 1;
      this.handler.events(res.events);
      return;
    }
    // A progress notification: nothing in the range changed up to the header revision.
    this.next = Math.max(this.next, Number(res.header.revision) + 1);
  }

  private broken(err: unknown): void {
    this.abandon();
    if (!this.running) return;
    const delay = retryDelay(this.failures, 50, 2000);
    if (this.failures === 0) this.log.warn('etcd watch broken; reconnecting', { from: this.next, reason: reasonOf(err) });
    this.failures++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
  }
}
