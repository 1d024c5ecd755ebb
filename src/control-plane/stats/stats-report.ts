// GET /api/v1/stats: the signal window summed over the asked window into rps, success rate and p50/p95/p99 per
// service (inbound at the destination), per route and per edge (outbound at the caller), plus a 10 s timeline per
// service. Shapes are those of contracts.md ("Golden signals").

import type { Signals, StatsReport } from '../../api/v1alpha1/control-api.js';
import { LATENCY_BUCKET_COUNT, quantileMs } from '../../telemetry/latency-buckets.js';
import { MAX_SERIES, REQUESTS, SignalWindow, SLOT_MS, SLOTS, SUCCESS, type RawWindow, type WindowSeries } from './signal-window.js';

export const DEFAULT_WINDOW_SECONDS = 60;
export const MAX_WINDOW_SECONDS = (SLOTS * SLOT_MS) / 1000;

export type { Signals, StatsReport };

class Sum {
  requests = 0;
  success = 0;
  readonly latency = new Float64Array(LATENCY_BUCKET_COUNT);

  signals(seconds: number): Signals {
    const n = this.requests;
    return {
      rps: round(n / seconds),
      successRate: n === 0 ? null : round(this.success / n, 4),
      p50Ms: roundOrNull(quantileMs(this.latency, 0.5)),
      p95Ms: roundOrNull(quantileMs(this.latency, 0.95)),
      p99Ms: roundOrNull(quantileMs(this.latency, 0.99)),
      requests: n,
    };
  }
}

function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function roundOrNull(v: number | null): number | null {
  return v === null ? null : round(v);
}

/** The 10 s slots a window of `windowSeconds` ending now covers (the current, partial one included). */
export function windowSlots(now: number, windowSeconds: number): { first: number; last: number } {
  const last = Math.floor(now / SLOT_MS);
  return { first: last - Math.max(1, Math.ceil((windowSeconds * 1000) / SLOT_MS)) + 1, last };
}

/**
 * The report over this replica's window and the raw windows of the other replicas (their proxies' summaries):
 * merged bucket by bucket into a scratch window first, so that quantiles come from the whole mesh's buckets.
 */
export function mergedReport(local: SignalWindow, others: readonly RawWindow[], windowSeconds: number, known: ReadonlyArray<{ service: string; namespace: string }>): StatsReport {
  if (others.length === 0) return statsReport(local, windowSeconds, known);
  const now = local.now();
  const { first, last } = windowSlots(now, windowSeconds);
  const merged = new SignalWindow({ now: () => now, maxSeries: MAX_SERIES * (others.length + 1) });
  merged.importRaw(local.exportRaw(first, last), first, last);
  for (const raw of others) merged.importRaw(raw, first, last);
  return statsReport(merged, windowSeconds, known);
}

/** Sums slots [first, last] of a series. */
function sum(w: WindowSeries, first: number, last: number): Sum {
  const out = new Sum();
  const d = w.data;
  for (let i = first; i <= last; i++) {
    const at = w.offset(i);
    if (at < 0) continue;
    out.requests += d[at + REQUESTS] as number;
    out.success += d[at + SUCCESS] as number;
    for (let b = 0; b < LATENCY_BUCKET_COUNT; b++) out.latency[b]! += d[at + b] as number;
  }
  return out;
}

/**
 * The report over the last `windowSeconds` (whole 10 s slots, the current one included). `known` lists the services
 * to show even without traffic (those with connected proxies): they get rps 0 and null latencies.
 */
export function statsReport(window: SignalWindow, windowSeconds: number, known: ReadonlyArray<{ service: string; namespace: string }>): StatsReport {
  const now = window.now();
  const { first, last } = windowSlots(now, windowSeconds);
  const slots = last - first + 1;
  const report: StatsReport = { windowSeconds, now, services: [], routes: [], edges: [], timeline: [] };
  const seen = new Set<string>();
  for (const w of window.active(last, slots)) {
    const k = w.key;
    const signals = sum(w, first, last).signals(windowSeconds);
    if (k.kind === 'service') {
      seen.add(`${k.namespace}/${k.service}`);
      report.services.push({ service: k.service, namespace: k.namespace, ...signals });
      const points: StatsReport['timeline'][number]['points'] = [];
      for (let i = first; i <= last; i++) {
        const p = sum(w, i, i);
        points.push({ t: i * SLOT_MS, rps: round(p.requests / (SLOT_MS / 1000)), successRate: p.requests === 0 ? null : round(p.success / p.requests, 4), p99Ms: roundOrNull(quantileMs(p.latency, 0.99)) });
      }
      report.timeline.push({ service: k.service, points });
    } else if (k.kind === 'route') {
      report.routes.push({ service: k.service, route: k.route ?? '', ...signals });
    } else {
      report.edges.push({ source: k.source ?? 'unknown', destination: k.service, ...signals });
    }
  }
  for (const s of known) {
    if (seen.has(`${s.namespace}/${s.service}`)) continue;
    seen.add(`${s.namespace}/${s.service}`);
    report.services.push({ service: s.service, namespace: s.namespace, rps: 0, successRate: null, p50Ms: null, p95Ms: null, p99Ms: null, requests: 0 });
  }
  const byName = (a: { service: string }, b: { service: string }) => a.service.localeCompare(b.service);
  report.services.sort((a, b) => byName(a, b) || a.namespace.localeCompare(b.namespace));
  report.routes.sort((a, b) => byName(a, b) || a.route.localeCompare(b.route));
  report.edges.sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination));
  report.timeline.sort(byName);
  return report;
}

/** Parses the `window` query parameter: whole seconds ("60" or "60s"), 1..600; the default when absent, an Error when invalid. */
export function parseWindow(text: string | null): number | Error {
  if (text === null || text === '') return DEFAULT_WINDOW_SECONDS;
  const m = /^(\d+)(s?)$/.exec(text);
  const n = m === null ? NaN : Number(m[1]);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WINDOW_SECONDS) return new Error(`window must be whole seconds from 1 to ${MAX_WINDOW_SECONDS}, got "${text.slice(0, 40)}"`);
  return n;
}
