// The sidecar's golden-signal summary for the control plane: per served service, per route and per caller ->
// destination edge, requests, successes and a bucketed latency distribution since the last summary. Recording is
// two map lookups and a few adds; take() hands the interval's series over and starts the next interval.

import { httpExchangeChannel } from '../core/diagnostics.js';
import { STATS_MAX_SERIES, type StatsSeries } from '../api/v1alpha1/stream-messages.js';
import { LATENCY_BUCKET_COUNT, latencyBucket } from './latency-buckets.js';
import type { ExchangeFacts } from './proxy-metrics.js';

/** Success as the golden signals count it: status < 500, no mesh error, and for gRPC grpc-status 0 (or none with HTTP 200). */
export function isSuccess(ex: ExchangeFacts): boolean {
  if (ex.errorCode !== null || ex.status === 0 || ex.status >= 500) return false;
  if (!ex.grpc) return true;
  return ex.grpcStatus === null ? ex.status === 200 : ex.grpcStatus === '0';
}

class Accumulator {
  requests = 0;
  success = 0;
  sumMs = 0;
  readonly latency = new Array<number>(LATENCY_BUCKET_COUNT).fill(0);

  add(ok: boolean, ms: number): void {
    this.requests++;
    if (ok) this.success++;
    this.sumMs += ms;
    this.latency[latencyBucket(ms)]!++;
  }
}

/** A key's accumulators by a second key (destination -> source, destination -> route). */
type Nested = Map<string, Map<string, Accumulator>>;

export interface StatsSummary {
  intervalMs: number;
  series: StatsSeries[];
  dropped: number;
}

export class GoldenSignalsRecorder {
  private services = new Map<string, Accumulator>();
  private edges: Nested = new Map();
  private routes: Nested = new Map();
  private seriesCount = 0;
  private dropped = 0;
  private since: number;
  private readonly onExchange = (msg: unknown): void => this.record(msg as ExchangeFacts);

  /** `now` is injectable for tests with mock timers. */
  constructor(
    private readonly maxSeries = STATS_MAX_SERIES,
    private readonly now: () => number = Date.now,
  ) {
    this.since = now();
  }

  subscribe(): void {
    httpExchangeChannel.subscribe(this.onExchange);
  }

  unsubscribe(): void {
    httpExchangeChannel.unsubscribe(this.onExchange);
  }

  record(ex: ExchangeFacts): void {
    const ok = isSuccess(ex);
    const ms = ex.endTime - ex.startTime;
    const dst = ex.destination ?? 'unknown';
    if (ex.direction === 'inbound') {
      let acc = this.services.get(dst) ?? null;
      if (acc === null && (acc = this.create()) !== null) this.services.set(dst, acc);
      if (acc === null) this.drop();
      else acc.add(ok, ms);
      // Callers inside the mesh count their edge themselves (outbound); traffic from outside has nobody else to.
      if (ex.source === null) this.addTo(this.edges, dst, 'unknown', ok, ms);
      return;
    }
    this.addTo(this.edges, dst, ex.source ?? 'unknown', ok, ms);
    if (ex.route !== null) this.addTo(this.routes, dst, ex.route, ok, ms);
  }

  private addTo(map: Nested, a: string, b: string, ok: boolean, ms: number): void {
    const acc = this.nested(map, a, b);
    if (acc === null) this.drop();
    else acc.add(ok, ms);
  }

  /** The interval's series (empty ones left out); the next interval starts now. */
  take(): StatsSummary {
    const series: StatsSeries[] = [];
    for (const [service, a] of this.services) series.push({ kind: 'service', service, ...counts(a) });
    for (const [service, bySource] of this.edges) for (const [source, a] of bySource) series.push({ kind: 'edge', service, source, ...counts(a) });
    for (const [service, byRoute] of this.routes) for (const [route, a] of byRoute) series.push({ kind: 'route', service, route, ...counts(a) });
    const now = this.now();
    const out = { intervalMs: Math.max(0, Math.round(now - this.since)), series, dropped: this.dropped };
    this.services = new Map();
    this.edges = new Map();
    this.routes = new Map();
    this.seriesCount = 0;
    this.dropped = 0;
    this.since = now;
    return out;
  }

  private nested(map: Nested, a: string, b: string): Accumulator | null {
    let inner = map.get(a);
    let acc = inner?.get(b);
    if (acc !== undefined) return acc;
    acc = this.create() ?? undefined;
    if (acc === undefined) return null;
    if (inner === undefined) map.set(a, (inner = new Map()));
    inner.set(b, acc);
    return acc;
  }

  /** A new series, or null once the summary holds maxSeries of them. */
  private create(): Accumulator | null {
    if (this.seriesCount >= this.maxSeries) return null;
    this.seriesCount++;
    return new Accumulator();
  }

  private drop(): void {
    this.dropped++;
  }
}

function counts(a: Accumulator): Pick<StatsSeries, 'requests' | 'success' | 'latency' | 'sumMs'> {
  return { requests: a.requests, success: a.success, latency: a.latency, sumMs: Math.round(a.sumMs * 1000) / 1000 };
}
