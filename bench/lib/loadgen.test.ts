// Unit tests for the wrk / h2load output parsers used by the benchmark.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latencySummary, parseH2load, parseH2loadLog, parseWrk } from './loadgen.js';

const wrkOut = `Running 5s test @ http://127.0.0.1:8080/small
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.05ms  312.44us   9.87ms   91.02%
    Req/Sec    31.21k     1.20k   33.10k    80.00%
  155342 requests in 5.00s, 24.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  31068.40
Transfer/sec:      4.80MB
`;

test('parseWrk reads requests, duration, rate and errors', () => {
  const s = parseWrk(wrkOut);
  assert.equal(s.requests, 155342);
  assert.equal(s.seconds, 5);
  assert.equal(s.rps, 31068.4);
  assert.equal(s.non2xx3xx, 7);
  assert.deepEqual(s.socketErrors, { connect: 0, read: 2, write: 0, timeout: 3 });
});

test('parseWrk handles a clean run and a duration in ms or minutes', () => {
  const clean = 'Running 1s test\n  900 requests in 999.50ms, 1MB read\nRequests/sec:    900.50\n';
  const s = parseWrk(clean);
  assert.equal(s.seconds, 0.9995);
  assert.equal(s.non2xx3xx, 0);
  assert.deepEqual(s.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
  assert.equal(parseWrk('  10 requests in 1.00m, 1KB read\nRequests/sec:      0.17\n').seconds, 60);
});

test('parseWrk rejects output without a summary', () => {
  assert.throws(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused\n'), /unrecognised wrk output/);
});

const h2loadOut = `starting benchmark...
spawning thread #0: 10 total client(s). Timing-based test with 0s of warm-up time and 3s of main duration for measurements.
Main benchmark duration is over for thread #0. Stopping all clients.

finished in 3.00s, 999.67 req/s, 159.18KB/s
requests: 2999 total, 3009 started, 2999 done, 2990 succeeded, 9 failed, 1 errored, 2 timeout
status codes: 2990 2xx, 0 3xx, 9 4xx, 0 5xx
traffic: 477.37KB (488837) total, 319.10KB (326762) headers (space savings 0.00%), 43.93KB (44985) data
`;

test('parseH2load reads the summary lines', () => {
  const s = parseH2load(h2loadOut);
  assert.equal(s.seconds, 3);
  assert.equal(s.rps, 999.67);
  assert.equal(s.done, 2999);
  assert.equal(s.succeeded, 2990);
  assert.equal(s.failed, 9);
  assert.equal(s.errored, 1);
  assert.equal(s.timeout, 2);
  assert.deepEqual(s.status, { '2xx': 2990, '3xx': 0, '4xx': 9, '5xx': 0 });
  const tiny = parseH2load('finished in 853us, 3517.00 req/s, 327.43KB/s\nrequests: 3 total, 3 started, 3 done, 3 succeeded, 0 failed, 0 errored, 0 timeout\n');
  assert.ok(Math.abs(tiny.seconds - 0.000853) < 1e-12);
});

test('parseH2load rejects output without a summary', () => {
  assert.throws(() => parseH2load('connect to 127.0.0.1:1 failed\n'), /unrecognised h2load output/);
});

test('parseH2loadLog keeps 2xx/3xx durations in ms, sorted, and counts the rest as failed', () => {
  const log = ['1795638973924013\t200\t391', '1795638973924020\t200\t314', '1795638973924073\t503\t120', '1795638973924080\t-1\t0', '', 'garbage'].join('\n');
  const parsed = parseH2loadLog(log);
  assert.deepEqual(parsed.okDurationsMs, [0.314, 0.391]);
  assert.equal(parsed.failed, 2);
  assert.deepEqual(latencySummary(parsed.okDurationsMs), { p50Ms: 0.314, p99Ms: 0.391 });
  assert.deepEqual(latencySummary([]), { p50Ms: null, p99Ms: null });
});
