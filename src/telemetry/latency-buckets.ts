// The fixed latency buckets golden-signal summaries use (the same bounds as mycel_request_duration_seconds, in ms),
// so that summaries from any number of proxies merge by adding counts, and quantiles are read back by interpolation.

import { LATENCY_BUCKETS } from './registry.js';

/** Upper bounds in milliseconds; a last, open bucket (above 30 s) follows them. */
export const LATENCY_BOUNDS_MS: readonly number[] = LATENCY_BUCKETS.map((s) => Math.round(s * 1e7) / 1e4);

/** Counts per bucket: one per bound plus the open bucket. */
export const LATENCY_BUCKET_COUNT = LATENCY_BOUNDS_MS.length + 1;

/** Index of the bucket a latency falls in (upper bounds inclusive, like Prometheus' `le`). */
export function latencyBucket(ms: number): number {
  const b = LATENCY_BOUNDS_MS;
  let i = 0;
  while (i < b.length && ms > (b[i] as number)) i++;
  return i;
}

/**
 * The q-quantile (0..1) of a bucketed distribution, interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile does (the first bucket starts at 0; a rank in the open bucket answers the last bound).
 * Null when there is no observation.
 */
export function quantileMs(counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] as number;
  if (total === 0) return null;
  const rank = q * total;
  let cum = 0;
  const b = LATENCY_BOUNDS_MS;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (c > 0 && cum + c >= rank) {
      if (i >= b.length) return b[b.length - 1] as number;
      const lower = i === 0 ? 0 : (b[i - 1] as number);
      const upper = b[i] as number;
      return lower + (upper - lower) * ((rank - cum) / c);
    }
    cum += c;
  }
  return b[b.length - 1] as number;
}
