// Local rate limiting per key (a destination, a route, or a source identity): GCRA, the token bucket kept as one
// number per key (its "theoretical arrival time"). Use from the request path: `const waitMs = limiter.take(key)`;
// 0 lets the request through, anything else is answered 429 with x-mycel-error `rate-limited` and
// `retry-after: retryAfterSeconds(waitMs)`. Memory is bounded: at most maxKeys keys, idle ones are swept out, and
// keys that find the map full share one overflow bucket, so a flood of new identities cannot buy fresh bursts.

import { performance } from 'node:perf_hooks';

export interface RateLimitOptions {
  /** Sustained rate, requests per second (may be fractional, must be positive). */
  ratePerSecond: number;
  /** Requests allowed at once after a quiet spell (default: one second's worth, at least 1). */
  burst?: number;
  /** Most keys tracked at once (default 10,000). */
  maxKeys?: number;
}

/** A full map is swept for idle keys at most this often, so a flood of new keys costs O(1) per request. */
const SWEEP_INTERVAL_MS = 1000;

export class RateLimiter {
  /** ms between tokens, and the bucket depth in ms (burst x interval). */
  private readonly interval: number;
  private readonly depth: number;
  private readonly maxKeys: number;
  /** Key -> theoretical arrival time: when its bucket is full again. A time in the past means a full bucket. */
  private readonly tats = new Map<string, number>();
  private overflowTat = -Infinity;
  private lastSweep = -Infinity;

  constructor(
    options: RateLimitOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(options.ratePerSecond > 0) || !Number.isFinite(options.ratePerSecond)) throw new RangeError(`rate must be a positive number of requests per second, got ${options.ratePerSecond}`);
    this.interval = 1000 / options.ratePerSecond;
    const burst = Math.max(1, Math.floor(options.burst ?? Math.ceil(options.ratePerSecond)));
    this.depth = burst * this.interval;
    this.maxKeys = Math.max(1, Math.floor(options.maxKeys ?? 10_000));
  }

  /** Takes one token for `key`: 0 when allowed, else the ms until a token will be there (nothing is taken then). */
  take(key = ''): number {
    const now = this.now();
    let tat = this.tats.get(key);
    if (tat === undefined) {
      if (this.tats.size >= this.maxKeys && !this.sweep(now)) return this.takeOverflow(now);
      tat = now;
    }
    const next = Math.max(tat, now) + this.interval;
    const excess = next - now - this.depth;
    if (excess > 0) return excess;
    this.tats.set(key, next);
    return 0;
  }

  /** Keys tracked now. */
  get size(): number {
    return this.tats.size;
  }

  private takeOverflow(now: number): number {
    const next = Math.max(this.overflowTat, now) + this.interval;
    const excess = next - now - this.depth;
    if (excess > 0) return excess;
    this.overflowTat = next;
    return 0;
  }

  /** Drops keys whose bucket is full again (they hold no information); true when that made room. */
  private sweep(now: number): boolean {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return false;
    this.lastSweep = now;
    for (const [k, tat] of this.tats) if (tat <= now) this.tats.delete(k);
    return this.tats.size < this.maxKeys;
  }
}

/** The Retry-After value for a wait: whole seconds, rounded up, at least 1. */
export function retryAfterSeconds(waitMs: number): string {
  return String(Math.max(1, Math.ceil(waitMs / 1000)));
}
