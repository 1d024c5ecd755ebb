// The retry budget of a destination (Linkerd's model): within a sliding window of `ttl`, retries may number
// minRetriesPerSecond x ttl plus retryRatio x the requests sent. It caps the extra load retries add when a
// destination fails as a whole, where per-request attempt limits would multiply the traffic. The window is a ring
// of time buckets, so each call is O(1) and allocates nothing.

import { performance } from 'node:perf_hooks';

export interface RetryBudgetOptions {
  /** Retries allowed per original request, on top of the floor (default 0.2). */
  retryRatio?: number;
  /** The floor: retries always allowed per second, so that low-traffic destinations can retry at all (default 10). */
  minRetriesPerSecond?: number;
  /** Length of the window, ms (default 10 s). */
  ttlMs?: number;
  /** Buckets in the window; the window slides one bucket at a time (default 10). */
  buckets?: number;
}

export class RetryBudget {
  private readonly ratio: number;
  private readonly reserve: number;
  private readonly width: number;
  private readonly deposits: Float64Array;
  private readonly withdrawals: Float64Array;
  private depositSum = 0;
  private withdrawalSum = 0;
  /** Absolute number (now / width) of the newest bucket. */
  private newest: number;

  constructor(
    options: RetryBudgetOptions = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    const ttl = Math.max(1, options.ttlMs ?? 10_000);
    const n = Math.max(1, Math.floor(options.buckets ?? 10));
    this.ratio = Math.max(0, options.retryRatio ?? 0.2);
    this.reserve = (Math.max(0, options.minRetriesPerSecond ?? 10) * ttl) / 1000;
    this.width = ttl / n;
    this.deposits = new Float64Array(n);
    this.withdrawals = new Float64Array(n);
    this.newest = Math.floor(now() / this.width);
  }

  /** Call for every request that is not itself a retry. */
  deposit(): void {
    this.slide();
    this.depositSum++;
    const b = this.newest % this.deposits.length;
    this.deposits[b] = (this.deposits[b] as number) + 1;
  }

  /** Call before each retry; false means the budget is spent and the caller answers with the last failure. */
  tryWithdraw(): boolean {
    this.slide();
    if (this.withdrawalSum + 1 > this.reserve + this.ratio * this.depositSum) return false;
    this.withdrawalSum++;
    const b = this.newest % this.withdrawals.length;
    this.withdrawals[b] = (this.withdrawals[b] as number) + 1;
    return true;
  }

  /** Retries the budget would allow right now (for metrics and the dashboard). */
  get available(): number {
    this.slide();
    return Math.max(0, Math.floor(this.reserve + this.ratio * this.depositSum - this.withdrawalSum));
  }

  /** Drops the buckets that fell out of the window (at most all of them) as time moves on. */
  private slide(): void {
    const current = Math.floor(this.now() / this.width);
    if (current <= this.newest) return;
    const n = this.deposits.length;
    const steps = Math.min(current - this.newest, n);
    for (let i = 1; i <= steps; i++) {
      const b = (this.newest + i) % n;
      this.depositSum -= this.deposits[b] as number;
      this.withdrawalSum -= this.withdrawals[b] as number;
      this.deposits[b] = 0;
      this.withdrawals[b] = 0;
    }
    this.newest = current;
  }
}
