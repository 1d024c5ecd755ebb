// Unit tests for the scale benchmark's summaries and target checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable, summarizeChange, TARGETS, verdicts, type ChangeRun, type ScaleReport, type SizeResult } from './scale-report.js';

const run = (rep: number, p99Ms: number, over: Partial<ChangeRun> = {}): ChangeRun => ({
  rep, revision: 10 + rep, targets: 100, acked: 100, applyMs: 3, lastAckMs: p99Ms + 1, lastAckFromSentMs: p99Ms + 4, p50Ms: p99Ms / 2, p99Ms, cpuS: 0.1, bytesPerTarget: 1200, otherReceivers: 0, otherBytes: 0, ...over,
});

test('a change summary takes medians over repetitions and keeps the worst misses and strays', () => {
  const s = summarizeChange('x', [run(0, 900), run(1, 100), run(2, 300, { acked: 97, otherReceivers: 2, otherBytes: 800 })]);
  assert.equal(s.median.p99Ms, 300);
  assert.equal(s.median.lastAckMs, 301);
  assert.deepEqual(s.worst, { missing: 3, otherReceivers: 2, otherBytes: 800 });
});

test('targets: every proxy connected, p99 under a second with none missing, < 1 MiB added per proxy, nothing to non-callers', () => {
  const good: SizeResult = {
    n: 100, status: 'ok', connected: 100,
    rss: { beforeMb: 60, peakConnectMb: 70, idleMb: 68, perProxyKb: 80, totalPerProxyKb: 700 },
    changes: { all: summarizeChange('all', [run(0, 400)]), rare: summarizeChange('rare', [run(0, 2)]) },
  };
  assert.deepEqual(verdicts(good), { connected: true, p99_all_ms: true, rss_per_proxy_kb: true, rare_scoped: true });
  const bad: SizeResult = {
    ...good, n: 200, connected: 199,
    rss: { ...good.rss!, perProxyKb: 2048 },
    changes: { all: summarizeChange('all', [run(0, 1500)]), rare: summarizeChange('rare', [run(0, 2, { otherReceivers: 1 })]) },
  };
  assert.deepEqual(verdicts(bad), { connected: false, p99_all_ms: false, rss_per_proxy_kb: false, rare_scoped: false });
  assert.deepEqual(verdicts({ n: 5, status: 'failed' }), { connected: null, p99_all_ms: null, rss_per_proxy_kb: null, rare_scoped: null });

  const report: ScaleReport = {
    date: 'd', machine: { cpus: 2, cpu_model: 'c', kernel: 'k', node: 'v', loadavg_start: 0, loadavg_end: 0, open_files: '1' },
    pinning: 'p', settings: { sizes: [100, 200], reps: 1, workers: 1, lease: '10s' }, method: [], targets: TARGETS,
    sizes: [good, bad], verdicts: { '100': verdicts(good), '200': verdicts(bad) },
  };
  assert.match(formatTable(report), /p99 < 1000 ms \[ok, MISSED\]/);
});
