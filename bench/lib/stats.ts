// Small pure statistics used by the benchmark: nearest-rank percentiles, medians and safe ratios.
// Nothing here touches processes or the clock, so it is unit-tested in stats.test.ts.

/** Nearest-rank percentile (p in 0..100) of an ascending-sorted array; undefined when empty. */
export function percentileSorted(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile out of range: ${p}`);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** Nearest-rank percentile of an unsorted array (the input is not modified). */
export function percentile(values: readonly number[], p: number): number | undefined {
  return percentileSorted([...values].sort((a, b) => a - b), p);
}

/** Median of the defined, finite values; the mean of the two middle values for even counts. */
export function median(values: readonly (number | null | undefined)[]): number | null {
  const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? (xs[mid] as number) : ((xs[mid - 1] as number) + (xs[mid] as number)) / 2;
}

/**
 * a / b, or null when either side is missing or b is too close to zero to give a meaningful ratio
 * (`minDenominator` guards against dividing by an added latency of a few microseconds).
 */
export function ratio(a: number | null | undefined, b: number | null | undefined, minDenominator = 1e-9): number | null {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  if (Math.abs(b) < minDenominator || b < 0) return null;
  return a / b;
}

/** Rounds to a fixed number of decimals, passing null through (for JSON output). */
export function round(value: number | null | undefined, decimals: number): number | null {
  if (value == null || !Number.isFinite(value)) return null;
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
