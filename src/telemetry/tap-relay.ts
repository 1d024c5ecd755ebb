// The taps a control plane starts on this proxy (over the config stream): matching events are batched into
// tap-events messages. Bounded like a local tap: when the stream cannot take more, events are dropped and counted.

import { TAP_MAX_BATCH, type TapEvent, type TapFilter } from '../api/v1alpha1/stream-messages.js';
import type { TapHub } from './tap.js';

/** Sends one batch; false when the stream cannot take it now (not connected, or its buffer is full). */
export type TapBatchSender = (id: string, events: TapEvent[], dropped: number) => boolean;

/** At most this many control-plane taps at once on one proxy (each API client is one). */
export const MAX_RELAYED_TAPS = 32;
/** Events kept per tap between two flushes. */
const MAX_PENDING = 1000;

interface RelayedTap {
  readonly id: string;
  events: TapEvent[];
  dropped: number;
  stop: () => void;
}

export class TapRelay {
  private readonly taps = new Map<string, RelayedTap>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly hub: TapHub,
    private readonly send: TapBatchSender,
    private readonly flushMs = 100,
  ) {}

  get open(): number {
    return this.taps.size;
  }

  start(id: string, filter: TapFilter): void {
    this.stop(id);
    if (this.taps.size >= MAX_RELAYED_TAPS) return;
    const t: RelayedTap = { id, events: [], dropped: 0, stop: () => {} };
    t.stop = this.hub.tap(filter, (ev) => this.offer(t, ev));
    this.taps.set(id, t);
  }

  stop(id: string): void {
    const t = this.taps.get(id);
    if (t === undefined) return;
    t.stop();
    this.taps.delete(id);
  }

  /** The stream to the control plane broke: it starts its taps again when the proxy reconnects. */
  stopAll(): void {
    for (const t of this.taps.values()) t.stop();
    this.taps.clear();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private offer(t: RelayedTap, ev: TapEvent): void {
    if (t.events.length >= MAX_PENDING) t.dropped++;
    else t.events.push(ev);
    this.schedule();
  }

  private flush(): void {
    this.timer = null;
    let owed = false;
    for (const t of this.taps.values()) {
      let start = 0;
      while (start < t.events.length) {
        const batch = t.events.slice(start, start + TAP_MAX_BATCH);
        start += batch.length;
        if (this.send(t.id, batch, t.dropped)) t.dropped = 0;
        else t.dropped += batch.length;
      }
      t.events = [];
      // Drops with nothing else to send are reported on their own.
      if (t.dropped > 0 && start === 0 && this.send(t.id, [], t.dropped)) t.dropped = 0;
      if (t.dropped > 0) owed = true;
    }
    // Drops not reported yet are tried again, even if no new event comes.
    if (owed) this.schedule();
  }

  private schedule(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => this.flush(), this.flushMs);
    this.timer.unref();
  }
}
