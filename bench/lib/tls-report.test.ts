// Unit tests for the TLS benchmark's figures: mTLS added per server paired by round, Mycel's ratios, core capacity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PathSeries, RoundResult } from './aggregate.js';
import { capacityPerCore, formatTlsAdded, tlsAdded } from './tls-report.js';

function r(round: number, p50: number, p99: number, cpu: number | null): RoundResult {
  return { round, throughputRps: null, mbPerS: null, p50Ms: p50, p99Ms: p99, cpuSPer1000: cpu, cpuSPerGib: null, rssLoadMb: null, errors: 0, requests: 1000 };
}

const series = (path: string, rounds: RoundResult[]): PathSeries => ({ path, status: 'ok', rssIdleMb: null, rounds });

test('mTLS added is the mTLS row minus the plain row of the same server, paired by round, with Mycel ratios', () => {
  const plain = [
    series('direct', [r(1, 0.1, 0.3, null), r(2, 0.1, 0.3, null)]),
    series('nginx', [r(1, 0.3, 1.0, 0.06), r(2, 0.5, 3.0, 0.08)]),
    series('haproxy', [r(1, 0.4, 1.0, 0.08), r(2, 0.4, 1.0, 0.08)]),
    series('mycel', [r(1, 1.0, 3.0, 0.3), r(2, 2.0, 9.0, 0.32)]),
  ];
  const mtls = [
    series('direct', plain[0]!.rounds),
    series('nginx', [r(1, 0.5, 1.2, 0.08), r(2, 0.7, 3.4, 0.1)]),
    series('haproxy', [r(1, 0.6, 1.5, 0.1), r(2, 0.6, 1.3, 0.1)]),
    series('mycel', [r(1, 1.4, 3.6, 0.34), r(2, 2.4, 9.8, 0.36)]),
    series('mycel-strict', [r(1, 1.5, 4.0, 0.35)]),
  ];
  const out = tlsAdded(plain, mtls);
  assert.deepEqual(Object.keys(out.paths), ['nginx', 'haproxy', 'mycel'], 'direct and rows without a plain twin are left out');
  const near = (a: number | null | undefined, b: number): void => assert.ok(a != null && Math.abs(a - b) < 1e-9, `${a} != ${b}`);
  near(out.paths.nginx?.added_p50_ms, 0.2);
  near(out.paths.nginx?.added_p99_ms, 0.3); // per round +0.2 and +0.4
  near(out.paths.mycel?.added_p99_ms, 0.7); // per round +0.6 and +0.8
  near(out.paths.mycel?.added_cpu_s_per_1000_req, 0.04);
  near(out.mycel_vs?.nginx.p50 ?? null, 2);
  near(out.mycel_vs?.haproxy.p99 ?? null, 0.7 / 0.4);
  near(out.mycel_vs?.nginx.cpu ?? null, 2);
  assert.match(formatTlsAdded(out), /mycel\s+\+0\.400\s+\+0\.700\s+\+0\.0400/);
});

test('a ratio against an added figure within noise is left out', () => {
  const plain = [series('nginx', [r(1, 0.30, 1, 0.06)]), series('mycel', [r(1, 1, 3, 0.3)])];
  const mtls = [series('nginx', [r(1, 0.35, 1.05, 0.061)]), series('mycel', [r(1, 1.4, 3.5, 0.34)])];
  const out = tlsAdded(plain, mtls);
  assert.equal(out.mycel_vs?.nginx.p50, null);
  assert.equal(out.mycel_vs?.nginx.cpu, null);
  assert.equal(out.mycel_vs?.haproxy.p99, null, 'no haproxy row at all');
  const negative = tlsAdded([series('nginx', [r(1, 0.3, 1, 0.06)]), series('mycel', [r(1, 1, 5, 0.3)])], [series('nginx', [r(1, 0.6, 2, 0.1)]), series('mycel', [r(1, 1.4, 3, 0.34)])]);
  assert.equal(negative.mycel_vs?.nginx.p99, null, 'mycel p99 went down with mTLS (noise): no ratio');
  assert.ok(negative.mycel_vs?.nginx.p50 != null);
});

test('one saturated core does 1000 / (cpu s per 1000) handshakes per second', () => {
  assert.equal(capacityPerCore(0.5), 2000);
  assert.equal(capacityPerCore(null), null);
  assert.equal(capacityPerCore(0), null);
});
