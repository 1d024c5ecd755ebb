// Turns per-round measurements into the per-path figures of the report: medians over rounds, latency added over
// `direct` (paired within each round), and Mycel's ratios against nginx, HAProxy and direct. Pure; see aggregate.test.ts.
import { median, ratio, round } from './stats.js';

/** One path measured once (one round) in one scenario. */
export interface RoundResult {
  round: number;
  /** Saturated requests per second (null for byte-throughput scenarios). */
  throughputRps: number | null;
  /** Saturated MiB/s (byte-throughput scenarios only). */
  mbPerS: number | null;
  /** Latency percentiles of the fixed-rate run. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Proxy CPU seconds (both hops) per 1000 requests of the fixed-rate run. */
  cpuSPer1000: number | null;
  /** Proxy CPU seconds per GiB moved by the saturated run (byte-throughput scenarios only). */
  cpuSPerGib: number | null;
  /** Peak RSS of both hops during the saturated run. */
  rssLoadMb: number | null;
  /** Failed requests or calls in this round (both runs). */
  errors: number;
  /** Requests or calls attempted in this round (both runs). */
  requests: number;
  /** Set when the round could not be measured at all. */
  error?: string;
}

/** A round that could not be measured at all, with the reason. */
export function failedRound(round: number, error: string): RoundResult {
  const nothing = { throughputRps: null, mbPerS: null, p50Ms: null, p99Ms: null, cpuSPer1000: null, cpuSPerGib: null, rssLoadMb: null };
  return { round, ...nothing, errors: 0, requests: 0, error: error.slice(0, 300) };
}

export type PathStatus = 'ok' | 'n/a' | 'skipped' | 'failed';

export interface PathSeries {
  path: string;
  status: PathStatus;
  reason?: string;
  /** RSS of both hops after start-up, before any traffic. */
  rssIdleMb: number | null;
  rounds: RoundResult[];
}

export interface LatencyRatio {
  p50: number | null;
  p99: number | null;
}

export interface PathSummary {
  status: PathStatus;
  reason?: string;
  rounds_measured?: number;
  throughput_rps?: number | null;
  mb_per_s?: number | null;
  p50_ms?: number | null;
  p99_ms?: number | null;
  added_p50_ms?: number | null;
  added_p99_ms?: number | null;
  cpu_s_per_1000_req?: number | null;
  cpu_s_per_gib?: number | null;
  rss_mb?: { idle: number | null; load: number | null };
  errors?: number;
  requests?: number;
  round_errors?: string[];
  ratio_vs_nginx?: number | null;
  ratio_vs_haproxy?: number | null;
  ratio_vs_direct?: number | null;
  latency_added_ratio_vs_nginx?: LatencyRatio;
  latency_added_ratio_vs_haproxy?: LatencyRatio;
  cpu_ratio_vs_nginx?: number | null;
  cpu_ratio_vs_haproxy?: number | null;
}

/** Added latency below this (ms) is within run-to-run noise here: no ratio is computed against it. */
export const minAddedLatencyMs = 0.1;

function okRounds(s: PathSeries | undefined): RoundResult[] {
  return s ? s.rounds.filter((r) => r.error === undefined) : [];
}

/** Median over rounds of (path - direct) for one latency field, pairing rounds by number. */
export function addedLatency(path: PathSeries, direct: PathSeries | undefined, field: 'p50Ms' | 'p99Ms'): number | null {
  return pairedDifference(path, direct, field);
}

/** Median over rounds of (path - base) for one figure, pairing rounds by number (rounds missing either are left out). */
export function pairedDifference(path: PathSeries, direct: PathSeries | undefined, field: 'p50Ms' | 'p99Ms' | 'cpuSPer1000'): number | null {
  if (!direct) return null;
  const byRound = new Map(okRounds(direct).map((r) => [r.round, r[field]] as const));
  const diffs: number[] = [];
  for (const r of okRounds(path)) {
    const base = byRound.get(r.round);
    const v = r[field];
    if (base != null && v != null) diffs.push(v - base);
  }
  return median(diffs);
}

/** Median figures (unrounded) of one path. */
function summarise(s: PathSeries, direct: PathSeries | undefined, bytes: boolean): PathSummary {
  if (s.status !== 'ok') return { status: s.status, ...(s.reason ? { reason: s.reason } : {}) };
  const rs = okRounds(s);
  const failed = s.rounds.filter((r) => r.error !== undefined).map((r) => `round ${r.round}: ${r.error}`);
  if (rs.length === 0) return { status: 'failed', reason: failed[0] ?? 'no round measured', round_errors: failed };
  const isDirect = s.path === 'direct';
  const out: PathSummary = {
    status: 'ok',
    rounds_measured: rs.length,
    ...(bytes ? { mb_per_s: median(rs.map((r) => r.mbPerS)) } : { throughput_rps: median(rs.map((r) => r.throughputRps)) }),
    p50_ms: median(rs.map((r) => r.p50Ms)),
    p99_ms: median(rs.map((r) => r.p99Ms)),
    added_p50_ms: isDirect ? null : addedLatency(s, direct, 'p50Ms'),
    added_p99_ms: isDirect ? null : addedLatency(s, direct, 'p99Ms'),
    cpu_s_per_1000_req: median(rs.map((r) => r.cpuSPer1000)),
    ...(bytes ? { cpu_s_per_gib: median(rs.map((r) => r.cpuSPerGib)) } : {}),
    rss_mb: { idle: s.rssIdleMb, load: median(rs.map((r) => r.rssLoadMb)) },
    errors: s.rounds.reduce((n, r) => n + r.errors, 0),
    requests: s.rounds.reduce((n, r) => n + r.requests, 0),
  };
  if (failed.length > 0) out.round_errors = failed;
  return out;
}

function throughputOf(s: PathSummary | undefined, bytes: boolean): number | null | undefined {
  if (!s || s.status !== 'ok') return null;
  return bytes ? s.mb_per_s : s.throughput_rps;
}

/** Adds Mycel's ratios (throughput, added latency, CPU) against nginx, HAProxy and direct to `m`. */
export function addRatios(m: PathSummary, all: Record<string, PathSummary>, bytes: boolean): PathSummary {
  const nginx = all['nginx'];
  const haproxy = all['haproxy'];
  const direct = all['direct'];
  const ok = (s: PathSummary | undefined): PathSummary | undefined => (s && s.status === 'ok' ? s : undefined);
  const latencyRatio = (peer: PathSummary | undefined): LatencyRatio => ({
    p50: ratio(m.added_p50_ms, ok(peer)?.added_p50_ms, minAddedLatencyMs),
    p99: ratio(m.added_p99_ms, ok(peer)?.added_p99_ms, minAddedLatencyMs),
  });
  const mine = throughputOf(m, bytes);
  return {
    ...m,
    ratio_vs_nginx: ratio(mine, throughputOf(nginx, bytes)),
    ratio_vs_haproxy: ratio(mine, throughputOf(haproxy, bytes)),
    ratio_vs_direct: ratio(mine, throughputOf(direct, bytes)),
    latency_added_ratio_vs_nginx: latencyRatio(nginx),
    latency_added_ratio_vs_haproxy: latencyRatio(haproxy),
    cpu_ratio_vs_nginx: ratio(m.cpu_s_per_1000_req, ok(nginx)?.cpu_s_per_1000_req),
    cpu_ratio_vs_haproxy: ratio(m.cpu_s_per_1000_req, ok(haproxy)?.cpu_s_per_1000_req),
  };
}

/** All paths of one scenario: medians, added latency, and ratios for every `mycel*` path. */
export function aggregateScenario(series: readonly PathSeries[], bytes: boolean): Record<string, PathSummary> {
  const direct = series.find((s) => s.path === 'direct');
  const out: Record<string, PathSummary> = {};
  for (const s of series) out[s.path] = summarise(s, direct, bytes);
  for (const s of series) {
    const summary = out[s.path];
    if (s.path.startsWith('mycel') && summary && summary.status === 'ok') out[s.path] = addRatios(summary, out, bytes);
  }
  return out;
}

/** Rounds every number of a summary for the JSON file (ms to µs, rates to 0.1, ratios to 3 decimals). */
export function roundSummary(s: PathSummary): PathSummary {
  const r3 = (v: number | null | undefined): number | null | undefined => (v === undefined ? undefined : round(v, 3));
  const lr = (l: LatencyRatio | undefined): LatencyRatio | undefined => (l ? { p50: round(l.p50, 3), p99: round(l.p99, 3) } : undefined);
  const out: PathSummary = { ...s };
  const set = <K extends keyof PathSummary>(k: K, v: PathSummary[K] | undefined): void => {
    if (v === undefined) delete out[k];
    else out[k] = v;
  };
  set('throughput_rps', s.throughput_rps === undefined ? undefined : round(s.throughput_rps, 1));
  set('mb_per_s', s.mb_per_s === undefined ? undefined : round(s.mb_per_s, 1));
  for (const k of ['p50_ms', 'p99_ms', 'added_p50_ms', 'added_p99_ms'] as const) set(k, r3(s[k]));
  set('cpu_s_per_1000_req', s.cpu_s_per_1000_req === undefined ? undefined : round(s.cpu_s_per_1000_req, 5));
  set('cpu_s_per_gib', s.cpu_s_per_gib === undefined ? undefined : round(s.cpu_s_per_gib, 4));
  if (s.rss_mb) out.rss_mb = { idle: round(s.rss_mb.idle, 1), load: round(s.rss_mb.load, 1) };
  for (const k of ['ratio_vs_nginx', 'ratio_vs_haproxy', 'ratio_vs_direct', 'cpu_ratio_vs_nginx', 'cpu_ratio_vs_haproxy'] as const) {
    set(k, r3(s[k]));
  }
  set('latency_added_ratio_vs_nginx', lr(s.latency_added_ratio_vs_nginx));
  set('latency_added_ratio_vs_haproxy', lr(s.latency_added_ratio_vs_haproxy));
  return out;
}
