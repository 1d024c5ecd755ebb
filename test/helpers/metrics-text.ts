// Reading Prometheus text exposition in tests: the sum of a counter's series that carry given labels.

/** Sum of a counter's series whose labels include all of `labels`. */
export function counterSum(metrics: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
