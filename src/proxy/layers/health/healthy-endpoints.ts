// The endpoints a destination's balancer should use right now: active health and outlier ejections combined, with
// locality (the caller's zone first, all zones once too few local endpoints are healthy) and the panic rule
// (when too few endpoints are healthy, health is ignored and traffic spreads over all of them).

import { performance } from 'node:perf_hooks';

export interface ViewEndpoint {
  readonly key: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** The active checker as the view sees it. */
export interface HealthSource<E> {
  readonly generation: number;
  isHealthy(key: string): boolean;
  update(endpoints: readonly E[]): void;
}

/** The outlier detector as the view sees it. */
export interface EjectionSource {
  readonly generation: number;
  ejectedUntil(key: string): number;
  update(keys: Iterable<string>): void;
}

export interface HealthyEndpointsOptions {
  /** Below this percentage of healthy endpoints, balance over all of them (default 50; 0 never panics). */
  panicThresholdPercent?: number;
  /** The caller's zone; unset, locality plays no part. */
  localZone?: string;
  /** The endpoint label holding its zone (default `zone`). */
  zoneLabel?: string;
  /** Stay in the local zone while at least this percentage of its endpoints is healthy (default 70). */
  localityFailoverPercent?: number;
}

/** healthy: every healthy endpoint; local: the healthy ones of the caller's zone; panic: every endpoint. */
export type RoutingMode = 'healthy' | 'local' | 'panic';

export class HealthyEndpoints<E extends ViewEndpoint> {
  private all: readonly E[] = [];
  private current: readonly E[] = [];
  private currentMode: RoutingMode = 'healthy';
  private currentVersion = 0;
  private seenActive = -1;
  private seenOutliers = -1;
  /** now() at which the next ejection ends, so the set is recomputed then without a timer. */
  private nextExpiry = Infinity;
  private readonly panicPercent: number;
  private readonly failoverPercent: number;
  private readonly zoneLabel: string;
  private readonly now: () => number;

  constructor(
    private readonly options: HealthyEndpointsOptions = {},
    private readonly sources: { active?: HealthSource<E>; outliers?: EjectionSource; now?: () => number } = {},
  ) {
    this.panicPercent = Math.min(100, Math.max(0, options.panicThresholdPercent ?? 50));
    this.failoverPercent = Math.min(100, Math.max(0, options.localityFailoverPercent ?? 70));
    this.zoneLabel = options.zoneLabel ?? 'zone';
    this.now = sources.now ?? (() => performance.now());
  }

  /** Replaces the destination's endpoints (config push, registry change), passing them on to the checker and detector. */
  update(endpoints: readonly E[]): void {
    this.all = endpoints;
    this.sources.active?.update(endpoints);
    this.sources.outliers?.update(endpoints.map((e) => e.key));
    this.recompute();
  }

  /**
   * Brings the set up to date and returns its version, which changes exactly when the set does. Per request:
   * `if (view.refresh() !== seen) { seen = view.version; balancer.update(view.endpoints) }`. Cheap when nothing changed.
   */
  refresh(): number {
    const a = this.sources.active?.generation ?? 0;
    const o = this.sources.outliers?.generation ?? 0;
    if (a !== this.seenActive || o !== this.seenOutliers || this.now() >= this.nextExpiry) this.recompute();
    return this.currentVersion;
  }

  get version(): number {
    return this.currentVersion;
  }

  /** The endpoints to balance over (as of the last refresh). */
  get endpoints(): readonly E[] {
    return this.current;
  }

  get mode(): RoutingMode {
    return this.currentMode;
  }

  private recompute(): void {
    const { active, outliers } = this.sources;
    this.seenActive = active?.generation ?? 0;
    this.seenOutliers = outliers?.generation ?? 0;
    const now = this.now();
    let nextExpiry = Infinity;
    const healthy: E[] = [];
    const local: E[] = [];
    let localTotal = 0;
    const zone = this.options.localZone;
    for (const e of this.all) {
      const isLocal = zone !== undefined && e.labels?.[this.zoneLabel] === zone;
      if (isLocal) localTotal++;
      const until = outliers?.ejectedUntil(e.key) ?? 0;
      if (until > now) {
        nextExpiry = Math.min(nextExpiry, until);
        continue;
      }
      if (active !== undefined && !active.isHealthy(e.key)) continue;
      healthy.push(e);
      if (isLocal) local.push(e);
    }
    this.nextExpiry = nextExpiry;
    let mode: RoutingMode;
    let set: readonly E[];
    if (localTotal > 0 && local.length > 0 && local.length * 100 >= this.failoverPercent * localTotal) {
      mode = 'local';
      set = local;
    } else if (healthy.length > 0 && healthy.length * 100 >= this.panicPercent * this.all.length) {
      mode = 'healthy';
      set = healthy;
    } else if (this.panicPercent > 0) {
      mode = 'panic';
      set = this.all;
    } else {
      mode = 'healthy';
      set = healthy;
    }
    this.currentMode = mode;
    if (!sameEndpoints(set, this.current)) {
      this.current = set;
      this.currentVersion++;
    }
  }
}

function sameEndpoints<E>(a: readonly E[], b: readonly E[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
