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
    const at = this.slotAt(index);
    const d = this.data;
    for (let i = 0; i < LATENCY_BUCKET_COUNT; i++) d[at + i]! += s.latency[i] as number;
    d[at + REQUESTS]! += s.requests;
    d[at + SUCCESS]! += s.success;
    d[at + SUM_MS]! += s.sumMs;
  }

  /** Adds a whole slot as another replica exported it (SLOT_WIDTH numbers). */
  addSlot(index: number, values: readonly number[]): void {
    const at = this.slotAt(index);
    for (let i = 0; i < SLOT_WIDTH; i++) this.data[at + i]! += values[i] as number;
  }

  /** Where slot `index` starts, cleared first if the ring position held an older slot. */
  private slotAt(index: number): number {
    const pos = index % SLOTS;
    const at = pos * SLOT_WIDTH;
    if (this.held[pos] !== index) {
      this.data.fill(0, at, at + SLOT_WIDTH);
      this.held[pos] = index;
    }
    if (index > this.lastIndex) this.lastIndex = index;
    return at;
  }

  /** Where the slot with this index starts in `data`, or -1 when the ring holds no data for it. */
  offset(index: number): number {
    const pos = index % SLOTS;
    return this.held[pos] === index ? pos * SLOT_WIDTH : -1;
  }
}

/** A window's series over some slots, as one replica hands them to another (GET /api/v1/stats?scope=local). */
export interface RawWindow {
  series: Array<{ key: SeriesKey; slots: Array<[index: number, values: number[]]> }>;
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
      const w = this.seriesFor(key);
      if (w === null) this.droppedSeries += s.requests;
      else w.add(index, s);
    }
  }

  /** The series with this key, created if the window has room; null when it is full. */
  private seriesFor(key: SeriesKey): WindowSeries | null {
    const id = `${key.kind}\u0001${key.namespace}\u0001${key.service}\u0001${key.route ?? ''}\u0001${key.source ?? ''}`;
    let w = this.series.get(id);
    if (w === undefined) {
      if (this.series.size >= this.maxSeries) return null;
      this.series.set(id, (w = new WindowSeries(key)));
    }
    return w;
  }

  /** The data of slots [first, last] (series without any there left out). */
  exportRaw(first: number, last: number): RawWindow {
    const out: RawWindow = { series: [] };
    for (const w of this.active(last, last - first + 1)) {
      const slots: RawWindow['series'][number]['slots'] = [];
      for (let i = first; i <= last; i++) {
        const at = w.offset(i);
        if (at >= 0) slots.push([i, Array.from(w.data.subarray(at, at + SLOT_WIDTH))]);
      }
      if (slots.length > 0) out.series.push({ key: w.key, slots });
    }
    return out;
  }

  /** Adds another replica's export of slots [first, last] (what its proxies reported); anything else is skipped. */
  importRaw(raw: RawWindow, first: number, last: number): void {
    if (!Array.isArray(raw?.series)) return;
    for (const s of raw.series) {
      const k = s?.key;
      if (k === undefined || !['service', 'route', 'edge'].includes(k.kind) || typeof k.service !== 'string' || !Array.isArray(s.slots)) continue;
      const key: SeriesKey = { kind: k.kind, service: k.service, namespace: String(k.namespace ?? ''), route: typeof k.route === 'string' ? k.route : null, source: typeof k.source === 'string' ? k.source : null };
      const w = this.seriesFor(key);
      if (w === null) continue;
      for (const slot of s.slots) {
        if (!Array.isArray(slot) || !Number.isInteger(slot[0]) || slot[0] < first || slot[0] > last || !Array.isArray(slot[1]) || slot[1].length !== SLOT_WIDTH || !slot[1].every((v) => typeof v === 'number' && v >= 0)) continue;
        w.addSlot(slot[0], slot[1]);
      }
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
