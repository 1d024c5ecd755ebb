// The hand-written metrics registry (src/telemetry/registry.ts) against prom-client 15: the cost of one request's
// observations on the hot path (a counter with 8 labels incremented, a histogram with 4 labels observed) and the time
// to render /metrics with about 2000 series. Prints a table and writes bench/results/metrics-latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import client from 'prom-client';
import { Counter, Histogram, LATENCY_BUCKETS, Registry } from '../src/telemetry/registry.js';
import { loadNow, machineInfo } from './lib/machine.js';
import { repoRoot } from './lib/processes.js';

const REQ_LABELS = ['direction', 'source_service', 'destination_service', 'route', 'method', 'status_code', 'grpc_status', 'retried'];
const DUR_LABELS = ['direction', 'source_service', 'destination_service', 'route'];
/** Distinct label sets the observations cycle through (a sidecar talking to a handful of destinations). */
const COMBOS = 32;
const OBSERVATIONS = 2_000_000;
const ROUNDS = 5;
/** Series in the render test: request counters plus histograms (each histogram series is 20 lines). */
const RENDER_COUNTERS = 1800;
const RENDER_HISTOGRAMS = 200;
const RENDERS = 50;

function labelSets(n: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < n; i++) out.push([i % 2 ? 'outbound' : 'inbound', 'web', `svc-${i % 8}`, `default/route-${i % 4}`, 'GET', String(200 + (i % 3) * 100), '', 'false']);
  return out;
}

const toObject = (names: string[], values: string[]) => Object.fromEntries(names.map((n, i) => [n, values[i] as string]));

interface Variant {
  name: string;
  /** Records observation i (latency in seconds). */
  observe: (i: number, seconds: number) => void;
}

function ours(): Variant {
  const reg = new Registry();
  const requests = reg.register(new Counter('mycel_requests_total', 'r', REQ_LABELS));
  const duration = reg.register(new Histogram('mycel_request_duration_seconds', 'd', DUR_LABELS, LATENCY_BUCKETS));
  const sets = labelSets(COMBOS);
  return {
    name: 'mycel registry (child lookup per request)',
    observe: (i, s) => {
      const v = sets[i % COMBOS]!;
      requests.child(v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!, v[7]!).value++;
      duration.child(v[0]!, v[1]!, v[2]!, v[3]!).observe(s);
    },
  };
}

function promObjects(): Variant {
  const reg = new client.Registry();
  const requests = new client.Counter({ name: 'mycel_requests_total', help: 'r', labelNames: REQ_LABELS, registers: [reg] });
  const duration = new client.Histogram({ name: 'mycel_request_duration_seconds', help: 'd', labelNames: DUR_LABELS, buckets: LATENCY_BUCKETS, registers: [reg] });
  const sets = labelSets(COMBOS).map((v) => ({ req: toObject(REQ_LABELS, v), dur: toObject(DUR_LABELS, v.slice(0, 4)) }));
  return {
    name: 'prom-client 15, label objects',
    observe: (i, s) => {
      const v = sets[i % COMBOS]!;
      requests.inc(v.req);
      duration.observe(v.dur, s);
    },
  };
}

function promPositional(): Variant {
  const reg = new client.Registry();
  const requests = new client.Counter({ name: 'mycel_requests_total', help: 'r', labelNames: REQ_LABELS, registers: [reg] });
  const duration = new client.Histogram({ name: 'mycel_request_duration_seconds', help: 'd', labelNames: DUR_LABELS, buckets: LATENCY_BUCKETS, registers: [reg] });
  const sets = labelSets(COMBOS);
  return {
    name: 'prom-client 15, labels(...values)',
    observe: (i, s) => {
      const v = sets[i % COMBOS]!;
      requests.labels(v[0]!, v[1]!, v[2]!, v[3]!, v[4]!, v[5]!, v[6]!, v[7]!).inc();
      duration.labels(v[0]!, v[1]!, v[2]!, v[3]!).observe(s);
    },
  };
}

/** Nanoseconds per observation (best of ROUNDS, after a warm-up round). */
function measureObserve(v: Variant): number {
  const latencies = new Float64Array(1024);
  for (let i = 0; i < latencies.length; i++) latencies[i] = 0.0002 * (1 + (i % 200));
  const run = () => {
    const t0 = performance.now();
    for (let i = 0; i < OBSERVATIONS; i++) v.observe(i, latencies[i & 1023]!);
    return ((performance.now() - t0) * 1e6) / OBSERVATIONS;
  };
  run();
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) best = Math.min(best, run());
  return best;
}

function fillOurs(): () => string {
  const reg = new Registry();
  const requests = reg.register(new Counter('mycel_requests_total', 'r', REQ_LABELS));
  const duration = reg.register(new Histogram('mycel_request_duration_seconds', 'd', DUR_LABELS, LATENCY_BUCKETS));
  for (let i = 0; i < RENDER_COUNTERS; i++) requests.child('outbound', 'web', `svc-${i % 100}`, `default/r-${Math.floor(i / 100)}`, 'GET', '200', '', 'false').value += i;
  for (let i = 0; i < RENDER_HISTOGRAMS; i++) duration.child('outbound', 'web', `svc-${i}`, 'default/r').observe(0.001 * i);
  return () => reg.render();
}

function fillProm(): () => Promise<string> {
  const reg = new client.Registry();
  const requests = new client.Counter({ name: 'mycel_requests_total', help: 'r', labelNames: REQ_LABELS, registers: [reg] });
  const duration = new client.Histogram({ name: 'mycel_request_duration_seconds', help: 'd', labelNames: DUR_LABELS, buckets: LATENCY_BUCKETS, registers: [reg] });
  for (let i = 0; i < RENDER_COUNTERS; i++) requests.labels('outbound', 'web', `svc-${i % 100}`, `default/r-${Math.floor(i / 100)}`, 'GET', '200', '', 'false').inc(i);
  for (let i = 0; i < RENDER_HISTOGRAMS; i++) duration.labels('outbound', 'web', `svc-${i}`, 'default/r').observe(0.001 * i);
  return () => reg.metrics();
}

/** Milliseconds per render (median of RENDERS after a warm-up), and the text's line count. */
async function measureRender(render: () => string | Promise<string>): Promise<{ ms: number; lines: number }> {
  const text = await render();
  for (let i = 0; i < 5; i++) await render();
  const times: number[] = [];
  for (let i = 0; i < RENDERS; i++) {
    const t0 = performance.now();
    await render();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, lines: text.split('\n').filter((l) => l && !l.startsWith('#')).length };
}

const load = loadNow();
const observe = [ours(), promObjects(), promPositional()].map((v) => ({ variant: v.name, ns_per_request: Math.round(measureObserve(v)) }));
const renderOurs = await measureRender(fillOurs());
const renderProm = await measureRender(fillProm());
const render = [
  { variant: 'mycel registry', series: RENDER_COUNTERS + RENDER_HISTOGRAMS, sample_lines: renderOurs.lines, ms_per_render: Math.round(renderOurs.ms * 1000) / 1000 },
  { variant: 'prom-client 15', series: RENDER_COUNTERS + RENDER_HISTOGRAMS, sample_lines: renderProm.lines, ms_per_render: Math.round(renderProm.ms * 1000) / 1000 },
];

const base = observe[0]!.ns_per_request;
console.log(`per request: counter inc with 8 labels + histogram observe with 4 labels, ${COMBOS} label sets, best of ${ROUNDS} x ${OBSERVATIONS}`);
console.log(['variant'.padEnd(44), 'ns/request'.padStart(11), 'vs mycel'.padStart(9)].join(''));
for (const o of observe) console.log([o.variant.padEnd(44), String(o.ns_per_request).padStart(11), `${(o.ns_per_request / base).toFixed(2)}x`.padStart(9)].join(''));
console.log(`\n/metrics render, ${RENDER_COUNTERS} counter + ${RENDER_HISTOGRAMS} histogram series, median of ${RENDERS}`);
console.log(['variant'.padEnd(44), 'lines'.padStart(7), 'ms/render'.padStart(11)].join(''));
for (const r of render) console.log([r.variant.padEnd(44), String(r.sample_lines).padStart(7), r.ms_per_render.toFixed(3).padStart(11)].join(''));

const out = join(repoRoot, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'metrics-latest.json'), JSON.stringify({ date: new Date().toISOString(), machine: machineInfo(load), observe, render }, null, 2) + '\n');
console.log(`\nwritten to bench/results/metrics-latest.json`);
