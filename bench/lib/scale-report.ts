// Output of the control-plane scale benchmark: per-size results, their medians over repetitions, the comparison with
// the targets, the text table (one column per size) and bench/results/control-plane-latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MachineInfo } from './machine.js';
import { median, round } from './stats.js';

/** One apply and everything it caused. Times in ms, from the apply's HTTP response unless said otherwise. */
export interface ChangeRun {
  rep: number;
  revision: number;
  /** Proxies that had to receive the change, and how many ACKed it in time. */
  targets: number;
  acked: number;
  /** From sending the apply request to its response. */
  applyMs: number;
  lastAckMs: number | null;
  /** From sending the apply request (before the store's commit) to the last target ACK: never negative. */
  lastAckFromSentMs: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** utime + stime of the control plane from just before the apply to the last target's ACK. */
  cpuS: number;
  bytesPerTarget: number | null;
  /** Proxies outside the targets that received anything, and how many bytes (both must be 0 for a scoped change). */
  otherReceivers: number;
  otherBytes: number;
}

export interface ChangeSummary {
  description: string;
  targets: number;
  runs: ChangeRun[];
  median: { applyMs: number | null; lastAckMs: number | null; lastAckFromSentMs: number | null; p50Ms: number | null; p99Ms: number | null; cpuS: number | null; bytesPerTarget: number | null };
  /** The worst repetition: most targets that did not ACK, most other proxies that received something. */
  worst: { missing: number; otherReceivers: number; otherBytes: number };
}

export interface SizeResult {
  n: number;
  status: 'ok' | 'failed' | 'skipped';
  reason?: string;
  model?: { services: number; endpoints: number; rareCallers: number; distinctViews: number };
  /** Open config streams as the control plane counts them, and as the clients do. */
  connected?: number;
  clientsOpen?: number;
  connectFailed?: number;
  connectErrors?: string[];
  connectS?: number;
  settleS?: number;
  /** Streams that broke after they had connected (over the whole run of the size). */
  lostStreams?: number;
  lostReasons?: string[];
  rss?: { beforeMb: number; peakConnectMb: number; idleMb: number; afterMb?: number; perProxyKb: number; totalPerProxyKb: number };
  idleCpuMsPerS?: number;
  changes?: { all?: ChangeSummary; rare?: ChangeSummary };
}

export interface ScaleReport {
  date: string;
  machine: MachineInfo & { open_files: string };
  pinning: string;
  settings: { sizes: number[]; reps: number; workers: number; lease: string; wall_time_s?: number };
  method: string[];
  targets: Record<string, string>;
  sizes: SizeResult[];
  verdicts: Record<string, Record<string, boolean | null>>;
}

export const TARGETS = {
  connected: '5,000 proxies connected',
  p99_all_ms: 'p99 apply -> ACK < 1 s for a change that touches every proxy',
  rss_per_proxy_kb: 'RSS < 1 MiB per connected proxy',
  rare_scoped: 'a change to one rare service sends nothing to the proxies that do not call it',
};

export function summarizeChange(description: string, runs: ChangeRun[]): ChangeSummary {
  const m = (f: (r: ChangeRun) => number | null) => median(runs.map(f));
  return {
    description,
    targets: runs[0]?.targets ?? 0,
    runs,
    median: { applyMs: m((r) => r.applyMs), lastAckMs: m((r) => r.lastAckMs), lastAckFromSentMs: m((r) => r.lastAckFromSentMs), p50Ms: m((r) => r.p50Ms), p99Ms: m((r) => r.p99Ms), cpuS: m((r) => r.cpuS), bytesPerTarget: m((r) => r.bytesPerTarget) },
    worst: {
      missing: Math.max(0, ...runs.map((r) => r.targets - r.acked)),
      otherReceivers: Math.max(0, ...runs.map((r) => r.otherReceivers)),
      otherBytes: Math.max(0, ...runs.map((r) => r.otherBytes)),
    },
  };
}

/** Target checks per size (null: not measured at this size). */
export function verdicts(s: SizeResult): Record<string, boolean | null> {
  const all = s.changes?.all;
  const rare = s.changes?.rare;
  return {
    connected: s.connected === undefined ? null : s.connected === s.n,
    p99_all_ms: all?.median.p99Ms == null ? null : all.median.p99Ms < 1000 && all.worst.missing === 0,
    rss_per_proxy_kb: s.rss === undefined ? null : s.rss.perProxyKb < 1024,
    rare_scoped: rare === undefined ? null : rare.worst.otherReceivers === 0 && rare.worst.missing === 0,
  };
}

const f = (v: number | null | undefined, d: number): string => (v == null || !Number.isFinite(v) ? '-' : v.toFixed(d));

/** The table: one row per figure, one column per size, the target on the right. */
export function formatTable(r: ScaleReport): string {
  const cols = r.sizes;
  const w = 18;
  const label = 46;
  const lines: string[] = [];
  /** A figure per size; with a target key, the target and whether each size met it (ok / MISSED / -). */
  const row = (name: string, cell: (s: SizeResult) => string, target = '', key = ''): void => {
    const cells = cols.map((s) => (s.status === 'skipped' ? '' : cell(s)).padStart(w)).join('');
    const met = key ? ` [${cols.map((s) => ({ true: 'ok', false: 'MISSED', null: '-' })[String(r.verdicts[String(s.n)]?.[key] ?? null)]).join(', ')}]` : '';
    lines.push(name.padEnd(label) + cells + (target ? `   ${target}${met}` : ''));
  };
  const all = (s: SizeResult) => s.changes?.all;
  const rare = (s: SizeResult) => s.changes?.rare;

  lines.push(`Mycel control-plane scale benchmark ${r.date}`);
  lines.push(`machine: ${r.machine.cpus} cpu (${r.machine.cpu_model}), kernel ${r.machine.kernel}, node ${r.machine.node}, open files ${r.machine.open_files}`);
  lines.push(`load average (1 min) at start / end: ${r.machine.loadavg_start} / ${r.machine.loadavg_end} (other work on the machine adds noise)`);
  lines.push(`pinning: ${r.pinning}`);
  lines.push(`${r.settings.reps} repetitions of each change (medians); ${r.settings.workers} client worker processes; lease ${r.settings.lease}`);
  lines.push('');
  lines.push(''.padEnd(label) + cols.map((s) => `N=${s.n}`.padStart(w)).join('') + '   target');
  row('proxies connected (control plane / clients)', (s) => `${s.connected ?? '-'} / ${s.clientsOpen ?? '-'}`, 'all N (5,000)', 'connected');
  row('  time to connect all, s', (s) => f(s.connectS, 2));
  row('  then quiet after registrations, s', (s) => f(s.settleS, 2));
  row('  distinct views / endpoints registered', (s) => (s.model ? `${s.model.distinctViews} / ${s.model.endpoints}` : '-'));
  row('  streams lost during the run', (s) => String(s.lostStreams ?? '-'));
  row('RSS before proxies / idle connected, MiB', (s) => (s.rss ? `${f(s.rss.beforeMb, 0)} / ${f(s.rss.idleMb, 0)}` : '-'));
  row('RSS peak while connecting / after changes', (s) => (s.rss ? `${f(s.rss.peakConnectMb, 0)} / ${f(s.rss.afterMb, 0)}` : '-'));
  row('RSS per connected proxy, KiB (added / total)', (s) => (s.rss ? `${f(s.rss.perProxyKb, 0)} / ${f(s.rss.totalPerProxyKb, 0)}` : '-'), '< 1024 KiB added', 'rss_per_proxy_kb');
  row('idle CPU (heartbeats), ms per s', (s) => f(s.idleCpuMsPerS, 1));
  lines.push('(a) MeshConfig change, every proxy receives it');
  row('  apply request -> response, ms', (s) => f(all(s)?.median.applyMs, 1));
  row('  apply -> last ACK, ms (from request sent)', (s) => `${f(all(s)?.median.lastAckMs, 0)} (${f(all(s)?.median.lastAckFromSentMs, 0)})`);
  row('  apply -> ACK p50 / p99, ms', (s) => `${f(all(s)?.median.p50Ms, 0)} / ${f(all(s)?.median.p99Ms, 0)}`, 'p99 < 1000 ms', 'p99_all_ms');
  row('  proxies that missed it (worst rep)', (s) => String(all(s)?.worst.missing ?? '-'));
  row('  control-plane CPU per change, s', (s) => f(all(s)?.median.cpuS, 3));
  row('  bytes received per proxy', (s) => f(all(s)?.median.bytesPerTarget, 0));
  lines.push('(b) change to the rare service (callers only)');
  row('  callers / other proxies that received it', (s) => (rare(s) ? `${rare(s)?.targets} / ${rare(s)?.worst.otherReceivers}` : '-'), '0 others', 'rare_scoped');
  row('  bytes to the other proxies (worst rep)', (s) => String(rare(s)?.worst.otherBytes ?? '-'));
  row('  apply -> last caller ACK, ms (from sent)', (s) => `${f(rare(s)?.median.lastAckMs, 1)} (${f(rare(s)?.median.lastAckFromSentMs, 1)})`);
  row('  control-plane CPU per change, s', (s) => f(rare(s)?.median.cpuS, 3));
  row('  bytes received per caller', (s) => f(rare(s)?.median.bytesPerTarget, 0));
  for (const s of cols) if (s.status !== 'ok') lines.push(`N=${s.n}: ${s.status}: ${s.reason ?? ''}`);
  for (const s of cols) for (const e of [...(s.connectErrors ?? []), ...(s.lostReasons ?? [])]) lines.push(`N=${s.n}: ${e}`);
  lines.push('');
  for (const m of r.method) lines.push(`  - ${m}`);
  return lines.join('\n');
}

function rounded(s: SizeResult): SizeResult {
  const rr = (v: number | null | undefined, d = 2) => round(v, d);
  const change = (c: ChangeSummary | undefined): ChangeSummary | undefined =>
    c && {
      ...c,
      runs: c.runs.map((x) => ({ ...x, applyMs: rr(x.applyMs) as number, lastAckMs: rr(x.lastAckMs), lastAckFromSentMs: rr(x.lastAckFromSentMs), p50Ms: rr(x.p50Ms), p99Ms: rr(x.p99Ms), cpuS: rr(x.cpuS) as number, bytesPerTarget: rr(x.bytesPerTarget, 0) })),
      median: Object.fromEntries(Object.entries(c.median).map(([k, v]) => [k, rr(v)])) as ChangeSummary['median'],
    };
  const rss = s.rss && (Object.fromEntries(Object.entries(s.rss).map(([k, v]) => [k, rr(v, 1)])) as SizeResult['rss']);
  return {
    ...s,
    ...(s.connectS !== undefined ? { connectS: rr(s.connectS) as number } : {}),
    ...(s.settleS !== undefined ? { settleS: rr(s.settleS) as number } : {}),
    ...(s.idleCpuMsPerS !== undefined ? { idleCpuMsPerS: rr(s.idleCpuMsPerS) as number } : {}),
    ...(rss ? { rss } : {}),
    ...(s.changes ? { changes: { ...(s.changes.all ? { all: change(s.changes.all) } : {}), ...(s.changes.rare ? { rare: change(s.changes.rare) } : {}) } } : {}),
  };
}

export function writeScaleReport(file: string, r: ScaleReport): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ ...r, sizes: r.sizes.map(rounded) }, null, 2)}\n`);
}
