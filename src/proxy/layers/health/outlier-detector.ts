// Passive outlier detection from real traffic: an endpoint that answers with too many consecutive 5xx (or gateway
// errors: 502, 503, 504 and no answer at all) is ejected for baseEjection x times-ejected (capped), never more than
// maxEjectionPercent of the endpoints at once. Ejections end lazily by time: no timers.

import { performance } from 'node:perf_hooks';

/** Report this "status" for a request that got no response: connect failure, reset, timeout. */
export const NO_RESPONSE = 0;

export interface OutlierOptions {
  /** Consecutive 5xx (or no response) that eject; 0 turns this rule off (default 5). */
  consecutive5xx?: number;
  /** Consecutive 502/503/504 (or no response) that eject; 0 turns this rule off (default 0). */
  consecutiveGatewayErrors?: number;
  /** First ejection lasts this long; the n-th, n times as long (default 30 s). */
  baseEjectionMs?: number;
  /** No ejection lasts longer (default 300 s). */
  maxEjectionMs?: number;
  /** At most this share of the endpoints is ejected at once, but at least one endpoint may be (default 10). */
  maxEjectionPercent?: number;
}

interface OutlierRecord {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** now() at which the current or last ejection ends (0: never ejected). */
  ejectedUntil: number;
  /** Ejections so far, less one for each base ejection time spent back in service (computed at the next ejection). */
  ejections: number;
}

export class OutlierDetector {
  /** Increases at every ejection; views compare it instead of subscribing (ejection ends are found by time). */
  generation = 0;
  private readonly records = new Map<string, OutlierRecord>();
  private readonly max5xx: number;
  private readonly maxGateway: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxPercent: number;

  constructor(
    options: OutlierOptions = {},
    private readonly now: () => number = () => performance.now(),
    private readonly onEject?: (key: string, untilMs: number, times: number) => void,
  ) {
    this.max5xx = Math.max(0, options.consecutive5xx ?? 5);
    this.maxGateway = Math.max(0, options.consecutiveGatewayErrors ?? 0);
    this.baseMs = Math.max(1, options.baseEjectionMs ?? 30_000);
    this.maxMs = Math.max(this.baseMs, options.maxEjectionMs ?? 300_000);
    this.maxPercent = Math.min(100, Math.max(0, options.maxEjectionPercent ?? 10));
  }

  /** Replaces the endpoint set by key; endpoints that stay keep their counters and ejections. */
  update(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const key of keep) if (!this.records.has(key)) this.records.set(key, { consecutive5xx: 0, consecutiveGateway: 0, ejectedUntil: 0, ejections: 0 });
    for (const key of this.records.keys()) if (!keep.has(key)) this.records.delete(key);
  }

  /** Records the outcome of one request to `key`: its HTTP status, or NO_RESPONSE. Call once per request. */
  report(key: string, status: number): void {
    const r = this.records.get(key);
    if (r === undefined) return;
    if (status >= 100 && status < 500) {
      r.consecutive5xx = 0;
      r.consecutiveGateway = 0;
      return;
    }
    r.consecutive5xx++;
    if (status === NO_RESPONSE || status === 502 || status === 503 || status === 504) r.consecutiveGateway++;
    else r.consecutiveGateway = 0;
    const tripped = (this.max5xx > 0 && r.consecutive5xx >= this.max5xx) || (this.maxGateway > 0 && r.consecutiveGateway >= this.maxGateway);
    if (tripped) this.eject(key, r);
  }

  isEjected(key: string): boolean {
    const r = this.records.get(key);
    return r !== undefined && r.ejectedUntil > this.now();
  }

  /** When the ejection of `key` ends (or ended); 0 when it was never ejected. */
  ejectedUntil(key: string): number {
    return this.records.get(key)?.ejectedUntil ?? 0;
  }

  private eject(key: string, r: OutlierRecord): void {
    const now = this.now();
    if (r.ejectedUntil > now) return; // already out (a request sent before the ejection just ended)
    let ejectedNow = 0;
    for (const x of this.records.values()) if (x.ejectedUntil > now) ejectedNow++;
    const allowed = this.maxPercent === 0 ? 0 : Math.max(1, Math.floor((this.records.size * this.maxPercent) / 100));
    // Over the cap the counters keep running, so the endpoint is ejected at its next failure once there is room.
    if (ejectedNow >= allowed) return;
    // Time spent back in service since the last ejection earns forgiveness: one ejection per base ejection time.
    const forgiven = r.ejectedUntil === 0 ? 0 : Math.floor((now - r.ejectedUntil) / this.baseMs);
    r.ejections = Math.max(0, r.ejections - forgiven) + 1;
    r.ejectedUntil = now + Math.min(this.maxMs, this.baseMs * r.ejections);
    r.consecutive5xx = 0;
    r.consecutiveGateway = 0;
    this.generation++;
    this.onEject?.(key, r.ejectedUntil, r.ejections);
  }
}
