// The control plane's short memory of golden signals: the proxies' summaries merged by series (service, route, edge)
// into a ring of 10 s buckets over 10 minutes. Summaries add up bucket by bucket (the latency buckets are fixed), so
// memory grows with the number of distinct series, which is capped, and never with the number of proxies.

import type { StatsSeries } from '../../api/v1alpha1/stream-messages.js';
import { LATENCY_BUCKET_COUNT } from '../../telemetry/latency-buckets.js';

export const SLOT_MS = 10_000;
/** 60 slots of 10 s: the longest window a query may ask for is 10 minutes. */
export const SLOTS = 60;
/** Distinct series kept at most (all kinds together); about 10 KB each, so about 21 MB when full. */
export const MAX_SERIES = 2000;

/** Numbers per slot: the latency buckets, then requests, successes and the sum of milliseconds. */
export const SLOT_WIDTH = LATENCY_BUCKET_COUNT + 3;
export const REQUESTS = LATENCY_BUCKET_COUNT;
export const SUCCESS = LATENCY_BUCKET_COUNT + 1;
const SUM_MS = LATENCY_BUCKET_COUNT + 2;

export interface SeriesKey {
  kind: StatsSeries['kind'];
  /** The destination service (kind service: the one that served). */
  service: string;
  namespace: string;
  route: string | null;
  source: string | null;
}

export class WindowSeries {
  /** The ring: SLOTS slots of SLOT_WIDTH numbers in one array (about 10 KB), and which 10 s slot each holds. */
  readonly data = new Float64Array(SLOTS * SLOT_WIDTH);
  private readonly held = new Float64Array(SLOTS).fill(-1);
  lastIndex = -1;
  constructor(readonly key: SeriesKey) {}

  add(index: number, s: StatsSeries): void {
    const pos = index % SLOTS;
    const at = pos * SLOT_WIDTH;
    const d = this.data;
    if (this.held[pos] !== index) {
      d.fill(0, at, at + SLOT_WIDTH);
      this.held[pos] = index;
    }
    for (let i = 0; i < LATENCY_BUCKET_COUNT; i++) d[at + i]! += s.latency[i] as number;
    d[at + REQUESTS]! += s.requests;
    d[at + SUCCESS]! += s.success;
    d[at + SUM_MS]! += s.sumMs;
    if (index > this.lastIndex) this.lastIndex = index;
  }

  /** Where the slot with this index starts in `data`, or -1 when the ring holds no data for it. */
  offset(index: number): number {
    const pos = index % SLOTS;
    return this.held[pos] === index ? pos * SLOT_WIDTH : -1;
  }
}

export interface SignalWindowOptions {
  maxSeries?: number;
  now?: () => number;
}

export class SignalWindow {
  private readonly series = new Map<string, WindowSeries>();
  private readonly maxSeries: number;
  private sweptAt = -1;
  readonly now: () => number;
  /** Observations refused because the window was full, and those the proxies themselves left out. */
  droppedSeries = 0;
  droppedByProxies = 0;

  constructor(o: SignalWindowOptions = {}) {
    this.maxSeries = o.maxSeries ?? MAX_SERIES;
    this.now = o.now ?? Date.now;
  }

  get size(): number {
    return this.series.size;
  }

  /** A proxy's summary; `service`/`namespace` are the proxy's own (a proxy speaks only for its own served service). */
  record(service: string, namespace: string, summary: { series: readonly StatsSeries[]; dropped: number }): void {
    const index = Math.floor(this.now() / SLOT_MS);
    this.sweep(index);
    this.droppedByProxies += summary.dropped;
    for (const s of summary.series) {
      if (s.requests === 0) continue;
      const key: SeriesKey =
        s.kind === 'service'
          ? { kind: 'service', service, namespace, route: null, source: null }
          : // Edges and routes are named without namespace (contracts.md): callers from any namespace add up.
            { kind: s.kind, service: s.service, namespace: '', route: s.route ?? null, source: s.source ?? null };
      const id = `${key.kind}\u0001${key.namespace}\u0001${key.service}\u0001${key.route ?? ''}\u0001${key.source ?? ''}`;
      let w = this.series.get(id);
      if (w === undefined) {
        if (this.series.size >= this.maxSeries) {
          this.droppedSeries += s.requests;
          continue;
        }
        this.series.set(id, (w = new WindowSeries(key)));
      }
      w.add(index, s);
    }
  }

  /** Series that had data within the last `slots` slots up to slot `index`. */
  *active(index: number, slots: number): Iterable<WindowSeries> {
    for (const w of this.series.values()) if (w.lastIndex > index - slots) yield w;
  }

  /** Forgets series with nothing in the whole ring: what keeps memory bounded as services come and go. */
  private sweep(index: number): void {
    if (index === this.sweptAt) return; // once per slot is enough
    this.sweptAt = index;
    for (const [id, w] of this.series) if (w.lastIndex <= index - SLOTS) this.series.delete(id);
  }
}
