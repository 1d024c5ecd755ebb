// How numbers read on the dashboard: rates, percentages, latencies, ages, and the health colour of a success rate.

export type Health = 'good' | 'warn' | 'bad' | 'idle';

/** Healthy at 99% and above, degraded down to 95%, failing below; no traffic is its own state. */
export function health(successRate: number | null | undefined, rps: number): Health {
  if (rps <= 0 || successRate === null || successRate === undefined) return 'idle';
  if (successRate >= 0.99) return 'good';
  if (successRate >= 0.95) return 'warn';
  return 'bad';
}

export function fmtRps(rps: number): string {
  if (rps === 0) return '0';
  if (rps < 0.1) return rps.toFixed(2);
  if (rps < 100) return rps.toFixed(1);
  return Math.round(rps).toLocaleString('en');
}

/** 99.5% shows as 99.5%, 100% as 100%; below 10% with no decimals. */
export function fmtPercent(rate: number | null | undefined): string {
  if (rate === null || rate === undefined) return '–';
  const p = rate * 100;
  if (p >= 99.95) return '100%';
  if (p >= 10) return `${p.toFixed(1)}%`;
  return `${p.toFixed(0)}%`;
}

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** "4s ago", "3m ago", "in 5h": for last contact and certificate expiry. */
export function fmtAge(then: number, now: number): string {
  const d = Math.round((now - then) / 1000);
  const abs = Math.abs(d);
  const text = abs < 60 ? `${abs}s` : abs < 3600 ? `${Math.round(abs / 60)}m` : abs < 172_800 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86_400)}d`;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

export function fmtClock(t: number): string {
  const d = new Date(t);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
