// Output of a benchmark run: the text table on stdout (one block per scenario, one row per path, Mycel's ratios
// under its rows) and the JSON files bench/results/latest.json and bench/results/history/<date>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { roundSummary, type LatencyRatio, type PathSummary } from './lib/aggregate.js';
import { VARIANTS } from './peers/mycel.js';

export interface ReportJson {
  date: string;
  machine: {
    cpus: number;
    cpu_model: string;
    kernel: string;
    node: string;
    nginx: string;
    haproxy: string;
    loadavg_start: number;
    loadavg_end: number;
  };
  pinning: string;
  rounds: number;
  settings: {
    duration_s: number;
    latency_duration_s: number;
    warmup_s: number;
    fixed_rate_rps: number;
    quick: boolean;
    only: string[];
    grpc_client: string;
    wall_time_s?: number;
  };
  method: string[];
  scenarios: Record<string, Record<string, PathSummary>>;
  notes: Record<string, string[]>;
}

export interface ScenarioBlock {
  id: string;
  title: string;
  load: string;
  bytes: boolean;
  summaries: Record<string, PathSummary>;
  notes: string[];
}

const pad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const padEnd = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

function num(v: number | null | undefined, decimals: number): string {
  return v == null || !Number.isFinite(v) ? '-' : v.toFixed(decimals);
}

function signed(v: number | null | undefined, decimals: number): string {
  if (v == null || !Number.isFinite(v)) return '-';
  return `${v >= 0 ? '+' : ''}${v.toFixed(decimals)}`;
}

function x(v: number | null | undefined): string {
  return v == null || !Number.isFinite(v) ? '-' : `${v.toFixed(2)}x`;
}

function latencyX(l: LatencyRatio | undefined): string {
  return `+p50 ${x(l?.p50)}, +p99 ${x(l?.p99)}`;
}

function statusText(path: string, s: PathSummary): string {
  const reason = s.reason ?? 'no reason recorded';
  if (s.status === 'skipped') return `skipped (${reason})`;
  if (s.status === 'n/a') return `n/a (${reason})`;
  return `failed (${reason})`;
}

/** The text block of one scenario (`fixedRate` null: the block has no fixed-rate run). */
export function formatScenario(b: ScenarioBlock, fixedRate: number | null): string {
  const unitHead = b.bytes ? 'MiB/s' : 'req/s';
  const perUnit = b.bytes ? 'msg' : 'req';
  const lines: string[] = [];
  lines.push(`== ${b.title} [${b.id}]`);
  lines.push(`   load: ${b.load}${fixedRate === null ? '' : `; fixed rate ${fixedRate}/s`}`);
  lines.push(
    `   ${padEnd('path', 18)}${pad(unitHead, 9)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('+p50 ms', 9)}${pad('+p99 ms', 9)}` +
      `${pad(`cpu s/1k ${perUnit}`, 14)}${pad('RSS MiB idle/load', 20)}`,
  );
  for (const [path, s] of Object.entries(b.summaries)) {
    if (s.status !== 'ok') {
      lines.push(`   ${padEnd(path, 18)}${statusText(path, s)}`);
      continue;
    }
    const thr = b.bytes ? num(s.mb_per_s, 1) : num(s.throughput_rps, 0);
    const rss = s.rss_mb && (s.rss_mb.idle != null || s.rss_mb.load != null) ? `${num(s.rss_mb.idle, 1)} / ${num(s.rss_mb.load, 1)}` : '-';
    const errs = s.errors && s.errors > 0 ? `  ! ${s.errors} errors in ${s.requests ?? '?'} requests` : '';
    const partial = s.round_errors && s.round_errors.length > 0 ? `  ! ${s.round_errors.length} round(s) failed: ${s.round_errors[0]}` : '';
    lines.push(
      `   ${padEnd(path, 18)}${pad(thr, 9)}${pad(num(s.p50_ms, 3), 9)}${pad(num(s.p99_ms, 3), 9)}` +
        `${pad(signed(s.added_p50_ms, 3), 9)}${pad(signed(s.added_p99_ms, 3), 9)}${pad(num(s.cpu_s_per_1000_req, 4), 14)}${pad(rss, 20)}${errs}${partial}`,
    );
    const plain = b.summaries.mycel;
    if (path in VARIANTS) {
      // The plain mesh path changed in one respect (a layer, telemetry): what that costs is the difference to `mycel`.
      if (plain?.status === 'ok') lines.push(`     ${path} vs mycel: ${layerCost(s, plain)}`);
    } else if (path.startsWith('mycel')) {
      lines.push(
        `     ${path} vs nginx: throughput ${x(s.ratio_vs_nginx)}, ${latencyX(s.latency_added_ratio_vs_nginx)}, cpu ${x(s.cpu_ratio_vs_nginx)}` +
          ` | vs haproxy: throughput ${x(s.ratio_vs_haproxy)}, ${latencyX(s.latency_added_ratio_vs_haproxy)}, cpu ${x(s.cpu_ratio_vs_haproxy)}` +
          ` | vs direct: throughput ${x(s.ratio_vs_direct)}`,
      );
    }
    if (b.bytes && s.cpu_s_per_gib != null) lines.push(`     ${path}: ${num(s.cpu_s_per_gib, 3)} proxy cpu s per GiB streamed`);
  }
  for (const n of b.notes) lines.push(`   note: ${n}`);
  return lines.join('\n');
}

/** p99 and CPU added over the plain mesh path (medians of each row), and the throughput ratio. */
function layerCost(s: PathSummary, plain: PathSummary): string {
  const diff = (a: number | null | undefined, b: number | null | undefined): number | null => (a == null || b == null ? null : a - b);
  const thr = s.throughput_rps != null && plain.throughput_rps ? s.throughput_rps / plain.throughput_rps : null;
  const cpu = s.cpu_s_per_1000_req != null && plain.cpu_s_per_1000_req ? s.cpu_s_per_1000_req / plain.cpu_s_per_1000_req : null;
  return `p99 ${signed(diff(s.p99_ms, plain.p99_ms), 3)} ms, cpu ${signed(diff(s.cpu_s_per_1000_req, plain.cpu_s_per_1000_req), 4)} s/1k req (${x(cpu)}), throughput ${x(thr)}`;
}

export function formatHeader(r: ReportJson): string {
  return [
    `Mycel benchmark ${r.date}`,
    `machine: ${r.machine.cpus} cpu (${r.machine.cpu_model}), kernel ${r.machine.kernel}, node ${r.machine.node}, ${r.machine.nginx}, ${r.machine.haproxy}`,
    `load average (1 min) at start / end: ${r.machine.loadavg_start} / ${r.machine.loadavg_end} (other work on the machine adds noise)`,
    `pinning: ${r.pinning}`,
    `rounds: ${r.rounds} (medians reported), saturation ${r.settings.duration_s}s after ${r.settings.warmup_s}s warm-up, ` +
      `latency at ${r.settings.fixed_rate_rps}/s for ${r.settings.latency_duration_s}s`,
    ...r.method.map((m) => `  - ${m}`),
  ].join('\n');
}

/** Writes latest.json and history/<date>.json under `dir`; returns both paths. */
export function writeReport(dir: string, r: ReportJson): { latest: string; history: string } {
  const rounded: ReportJson = {
    ...r,
    scenarios: Object.fromEntries(
      Object.entries(r.scenarios).map(([id, paths]) => [id, Object.fromEntries(Object.entries(paths).map(([p, s]) => [p, roundSummary(s)]))]),
    ),
  };
  mkdirSync(join(dir, 'history'), { recursive: true });
  const text = `${JSON.stringify(rounded, null, 2)}\n`;
  const latest = join(dir, 'latest.json');
  const history = join(dir, 'history', `${r.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(latest, text);
  writeFileSync(history, text);
  return { latest, history };
}
