// Unit tests for the benchmark's aggregation: medians over rounds, added latency paired by round, Mycel ratios.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addedLatency, aggregateScenario, failedRound, roundSummary, type PathSeries, type RoundResult } from './aggregate.js';

function r(round: number, rps: number, p50: number, p99: number, cpu: number | null = null, rss: number | null = null): RoundResult {
  return { round, throughputRps: rps, mbPerS: null, p50Ms: p50, p99Ms: p99, cpuSPer1000: cpu, cpuSPerGib: null, rssLoadMb: rss, errors: 0, requests: 100 };
}

function series(path: string, rounds: RoundResult[], rssIdleMb: number | null = null): PathSeries {
  return { path, status: 'ok', rssIdleMb, rounds };
}

test('added latency pairs each round with the same round of direct, then takes the median', () => {
  const direct = series('direct', [r(1, 0, 1.0, 2.0), r(2, 0, 5.0, 9.0), r(3, 0, 1.0, 2.0)]);
  const nginx = series('nginx', [r(1, 0, 1.5, 3.0), r(2, 0, 5.2, 9.5), r(3, 0, 1.4, 2.8)]);
  // Per-round differences: 0.5, 0.2, 0.4 -> median 0.4 (medians of p50s would give 1.5 - 1.0 = 0.5).
  assert.ok(Math.abs((addedLatency(nginx, direct, 'p50Ms') ?? NaN) - 0.4) < 1e-9);
  assert.ok(Math.abs((addedLatency(nginx, direct, 'p99Ms') ?? NaN) - 0.8) < 1e-9);
});

test('a failed round is left out of medians and of the pairing', () => {
  const direct = series('direct', [r(1, 100, 1, 2), failedRound(2, 'boom')]);
  const nginx = series('nginx', [r(1, 50, 2, 4), r(2, 10, 9, 9)]);
  const out = aggregateScenario([direct, nginx], false);
  assert.equal(out['direct']?.throughput_rps, 100);
  assert.deepEqual(out['direct']?.round_errors, ['round 2: boom']);
  assert.equal(out['nginx']?.added_p50_ms, 1);
  // A path whose every round failed is reported failed, with the first reason.
  const dead = aggregateScenario([direct, series('haproxy', [failedRound(1, 'hop B exited'), failedRound(2, 'x'.repeat(400))])], false);
  assert.equal(dead['haproxy']?.status, 'failed');
  assert.equal(dead['haproxy']?.reason, 'round 1: hop B exited');
  assert.equal(dead['haproxy']?.round_errors?.[1]?.length, 'round 2: '.length + 300);
});

test('mycel gets throughput, added-latency and cpu ratios against nginx, haproxy and direct', () => {
  const out = aggregateScenario(
    [
      series('direct', [r(1, 1000, 1.0, 2.0)]),
      series('nginx', [r(1, 500, 1.2, 2.5, 0.02, 10)], 8),
      series('haproxy', [r(1, 400, 1.15, 2.4, 0.04, 12)], 9),
      series('mycel', [r(1, 250, 1.6, 4.0, 0.08, 90)], 60),
    ],
    false,
  );
  const m = out['mycel'];
  assert.ok(m);
  assert.equal(m.ratio_vs_nginx, 0.5);
  assert.equal(m.ratio_vs_haproxy, 0.625);
  assert.equal(m.ratio_vs_direct, 0.25);
  assert.ok(Math.abs((m.latency_added_ratio_vs_nginx?.p50 ?? NaN) - 3) < 1e-9);
  assert.ok(Math.abs((m.latency_added_ratio_vs_nginx?.p99 ?? NaN) - 4) < 1e-9);
  assert.ok(Math.abs((m.latency_added_ratio_vs_haproxy?.p50 ?? NaN) - 4) < 1e-9);
  assert.equal(m.cpu_ratio_vs_nginx, 4);
  assert.equal(m.cpu_ratio_vs_haproxy, 2);
  assert.deepEqual(m.rss_mb, { idle: 60, load: 90 });
  assert.equal(out['nginx']?.ratio_vs_nginx, undefined);
});

test('ratios are null when the peer is n/a or its added latency is under 0.1 ms', () => {
  const out = aggregateScenario(
    [
      series('direct', [r(1, 1000, 1.0, 2.0)]),
      { path: 'nginx', status: 'n/a', reason: 'no stream module', rssIdleMb: null, rounds: [] },
      series('haproxy', [r(1, 400, 1.05, 2.5)]),
      series('mycel', [r(1, 200, 1.5, 3.0)]),
    ],
    false,
  );
  assert.deepEqual(out['nginx'], { status: 'n/a', reason: 'no stream module' });
  assert.equal(out['mycel']?.ratio_vs_nginx, null);
  assert.equal(out['mycel']?.latency_added_ratio_vs_haproxy?.p50, null);
  assert.ok(Math.abs((out['mycel']?.latency_added_ratio_vs_haproxy?.p99 ?? NaN) - 2) < 1e-9);
});

test('byte-throughput scenarios compare MiB/s', () => {
  const bytes = (round: number, mb: number): RoundResult => ({ ...r(round, 0, 1, 2), throughputRps: null, mbPerS: mb });
  const out = aggregateScenario([series('direct', [bytes(1, 800)]), series('haproxy', [bytes(1, 400)]), series('mycel', [bytes(1, 100)])], true);
  assert.equal(out['mycel']?.mb_per_s, 100);
  assert.equal(out['mycel']?.throughput_rps, undefined);
  assert.equal(out['mycel']?.ratio_vs_haproxy, 0.25);
  assert.equal(out['mycel']?.ratio_vs_direct, 0.125);
});

test('roundSummary rounds figures and keeps nulls', () => {
  const s = roundSummary({ status: 'ok', throughput_rps: 1234.5678, p50_ms: 0.123456, added_p50_ms: null, ratio_vs_nginx: 0.33333 });
  assert.equal(s.throughput_rps, 1234.6);
  assert.equal(s.p50_ms, 0.123);
  assert.equal(s.added_p50_ms, null);
  assert.equal(s.ratio_vs_nginx, 0.333);
});
