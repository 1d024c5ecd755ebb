// Figures of the TLS benchmark that come from the rows of one run (pure, see tls-report.test.ts): what mTLS adds to a
// hop (mTLS row minus plain-text row of the same server, paired by round) with Mycel's ratios, and the handshake
// capacity of one server core worked out from the server's CPU per handshake.
import { minAddedLatencyMs, pairedDifference, type PathSeries } from './aggregate.js';
import { ratio } from './stats.js';

export interface TlsAdded {
  added_p50_ms: number | null;
  added_p99_ms: number | null;
  added_cpu_s_per_1000_req: number | null;
}

export interface TlsAddedRatio {
  p50: number | null;
  p99: number | null;
  cpu: number | null;
}

export interface TlsAddedReport {
  /** Per server path (nginx, haproxy, mycel): mTLS minus plain text, medians of the per-round differences. */
  paths: Record<string, TlsAdded>;
  /** Mycel's added figures over nginx's and HAProxy's (null when a side is missing or too small to divide by). */
  mycel_vs: Record<'nginx' | 'haproxy', TlsAddedRatio> | null;
}

/** Added CPU below this (s per 1000 requests, 10 µs per request) is under the /proc tick resolution of a short run. */
const minAddedCpu = 0.01;

/** What mTLS adds to each server's hop: for every path of `mtls` that `plain` also has (direct left out). */
export function tlsAdded(plain: readonly PathSeries[], mtls: readonly PathSeries[]): TlsAddedReport {
  const paths: Record<string, TlsAdded> = {};
  for (const s of mtls) {
    const base = plain.find((p) => p.path === s.path);
    if (s.path === 'direct' || base === undefined) continue;
    paths[s.path] = {
      added_p50_ms: pairedDifference(s, base, 'p50Ms'),
      added_p99_ms: pairedDifference(s, base, 'p99Ms'),
      added_cpu_s_per_1000_req: pairedDifference(s, base, 'cpuSPer1000'),
    };
  }
  const m = paths.mycel;
  // Both sides must be above the noise floor: a ratio of two differences within noise (or of a negative one) says nothing.
  const guarded = (a: number | null | undefined, b: number | null | undefined, min: number): number | null =>
    a == null || a < min ? null : ratio(a, b, min);
  const vs = (peer: string): TlsAddedRatio => ({
    p50: guarded(m?.added_p50_ms, paths[peer]?.added_p50_ms, minAddedLatencyMs),
    p99: guarded(m?.added_p99_ms, paths[peer]?.added_p99_ms, minAddedLatencyMs),
    cpu: guarded(m?.added_cpu_s_per_1000_req, paths[peer]?.added_cpu_s_per_1000_req, minAddedCpu),
  });
  return { paths, mycel_vs: m === undefined ? null : { nginx: vs('nginx'), haproxy: vs('haproxy') } };
}

/** Handshakes per second one fully busy server core would sustain, from the server's CPU seconds per 1000 handshakes. */
export function capacityPerCore(cpuSPer1000: number | null | undefined): number | null {
  return cpuSPer1000 == null || !(cpuSPer1000 > 0) ? null : 1000 / cpuSPer1000;
}

const signed = (v: number | null, d: number): string => (v === null ? '-' : `${v >= 0 ? '+' : ''}${v.toFixed(d)}`);
const times = (v: number | null): string => (v === null ? '-' : `${v.toFixed(2)}x`);

/** The text block of the tls-added table. */
export function formatTlsAdded(r: TlsAddedReport): string {
  const lines = [
    '== What mTLS adds to one hop [tls-added]: hop-mtls row minus hop-plaintext row of the same server process, paired by round',
    `   ${'path'.padEnd(18)}${'+p50 ms'.padStart(9)}${'+p99 ms'.padStart(9)}${'+cpu s/1k req'.padStart(15)}`,
  ];
  for (const [path, a] of Object.entries(r.paths)) {
    lines.push(`   ${path.padEnd(18)}${signed(a.added_p50_ms, 3).padStart(9)}${signed(a.added_p99_ms, 3).padStart(9)}${signed(a.added_cpu_s_per_1000_req, 4).padStart(15)}`);
  }
  if (r.mycel_vs !== null) {
    const x = (v: TlsAddedRatio): string => `+p50 ${times(v.p50)}, +p99 ${times(v.p99)}, +cpu ${times(v.cpu)}`;
    lines.push(`     mycel vs nginx: ${x(r.mycel_vs.nginx)} | vs haproxy: ${x(r.mycel_vs.haproxy)}`);
  }
  return lines.join('\n');
}
