// Benchmark runner: starts the upstream apps and, per protocol family, the direct/nginx/HAProxy/Mycel paths; runs
// every scenario for several rounds with the paths interleaved; prints the table and writes bench/results/*.json.
// Usage: `npm run bench -- [flags]` or `node dist/bench/run.js --help` after a build (flags in `usage` below).
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { aggregateScenario, failedRound, type PathSeries, type RoundResult } from './lib/aggregate.js';
import { makeCerts } from './lib/certs.js';
import { preloadWorkers } from './lib/loadgen.js';
import { have, loadNow, machineInfo, peerVersions } from './lib/machine.js';
import { installCleanup, peakRssDuring, pinSelf, removeOnExit, repoRoot, runMain, sampleTree, type Managed } from './lib/processes.js';
import { haproxyPeer } from './peers/haproxy.js';
import { VARIANTS, mycelPeer } from './peers/mycel.js';
import { nginxPeer } from './peers/nginx.js';
import { NotApplicable, type BenchEnv, type Family, type PathInstance, type Peer } from './peers/peer.js';
import { startUpstream } from './peers/upstream.js';
import { formatHeader, formatScenario, writeReport, type ReportJson, type ScenarioBlock } from './report.js';
import { probe, scenarios, type Scenario, type ScenarioContext } from './scenarios.js';

interface Options {
  rounds: number;
  duration: number;
  latencyDuration: number;
  warmup: number;
  rate: number;
  only: string[];
  quick: boolean;
  keepTmp: boolean;
  grpcClient: 'h2load' | 'grpc-js';
}

const usage = `usage: npm run bench -- [options]   (or: node dist/bench/run.js [options] after a build)
  --rounds N             rounds per scenario, paths interleaved in each round (default 3; --quick: 1)
  --duration S           seconds of each saturated run (default 3; --quick: 1)
  --latency-duration S   seconds of each fixed-rate latency run (default 3; --quick: 1)
  --warmup S             seconds of warm-up before each path's first round (default 1; --quick: 0.5)
  --rate N               requests per second of the latency runs (default 1000)
  --only A[,B...]        substrings of scenario ids (http1-small-get, http1-large-response, http1-large-post,
                         h2c-small-get, grpc-unary, tcp-stream) or of paths (nginx, haproxy, mycel,
                         mycel-h2transport, mycel-retry, mycel-ratelimit, mycel-breaker, mycel-authz,
                         mycel-nometrics, mycel-accesslog, mycel-tracing, mycel-tap); direct always runs
                         hosts: the two-hop path across network namespaces (bench/hosts.ts: direct, nginx, HAProxy,
                         mycel explicit and transparent; needs root), which the full run includes at its end
  --quick                one short round of everything: a smoke run (about 2 minutes)
  --grpc-client C        gRPC load generator for the measured runs: h2load (default, gRPC-framed POSTs) or grpc-js
                         (a @grpc/grpc-js client loop; it tops out near 2k calls/s on one core here); the warm-up
                         always uses grpc-js, which checks grpc-status end to end
  --keep-tmp             keep the temporary directory (configs, certs, proxy logs) and print its path`;

function grpcClientOption(v: string | undefined): 'h2load' | 'grpc-js' {
  if (v === undefined || v === 'h2load' || v === 'grpc-js') return v ?? 'h2load';
  console.error(`bench: --grpc-client must be h2load or grpc-js, got ${v}\n${usage}`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      duration: { type: 'string' },
      'latency-duration': { type: 'string' },
      warmup: { type: 'string' },
      rate: { type: 'string' },
      only: { type: 'string', multiple: true },
      quick: { type: 'boolean', default: false },
      'keep-tmp': { type: 'boolean', default: false },
      'grpc-client': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const positive = (name: string, v: string | undefined, fallback: number, integer = false): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      console.error(`bench: --${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}\n${usage}`);
      process.exit(2);
    }
    return n;
  };
  return {
    rounds: positive('rounds', values.rounds, quick ? 1 : 3, true),
    duration: positive('duration', values.duration, quick ? 1 : 3),
    latencyDuration: positive('latency-duration', values['latency-duration'], quick ? 1 : 3),
    warmup: positive('warmup', values.warmup, quick ? 0.5 : 1),
    rate: positive('rate', values.rate, 1000, true),
    only: (values.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s.length > 0),
    quick,
    keepTmp: values['keep-tmp'] ?? false,
    grpcClient: grpcClientOption(values['grpc-client']),
  };
}

const families: readonly Family[] = ['http1', 'h2c', 'grpc', 'tcp'];
const peers: readonly Peer[] = [nginxPeer, haproxyPeer, mycelPeer];

/** Splits --only tokens into scenario filters (tokens matching a scenario id) and path filters (the rest). */
function selection(only: string[]): { scenarioOk: (id: string) => boolean; pathOk: (path: string) => boolean } {
  const scenarioTokens = only.filter((t) => scenarios.some((s) => s.id.includes(t)));
  const pathTokens = only.filter((t) => !scenarioTokens.includes(t));
  return {
    scenarioOk: (id) => scenarioTokens.length === 0 || scenarioTokens.some((t) => id.includes(t)),
    pathOk: (path) => path === 'direct' || pathTokens.length === 0 || pathTokens.some((t) => path.includes(t)),
  };
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 300);

function directInstance(family: Family, env: BenchEnv): PathInstance {
  return { path: 'direct', port: env.upstream[family], authority: 'api', processes: [], notes: [], stop: async () => undefined };
}

function assertAlive(processes: readonly Managed[]): void {
  for (const p of processes) {
    if (p.hasExited()) throw new Error(`${p.name} ${p.exitDescription()}${p.failureReason() ? `: ${p.failureReason()}` : ''}`);
  }
}

/** One path, one round of one scenario: warm-up, fixed-rate latency run (CPU sampled), saturated run (RSS sampled). */
async function measure(
  scenario: Scenario,
  inst: PathInstance,
  round: number,
  opts: Options,
  ctx: ScenarioContext,
  fresh: boolean,
): Promise<RoundResult> {
  assertAlive(inst.processes);
  const target = { port: inst.port, authority: inst.authority };
  const pids = inst.processes.map((p) => p.pid);
  // The full warm-up for the first round and for a proxy that was just (re)started, a short one otherwise.
  const warmupSeconds = fresh ? opts.warmup : Math.min(opts.warmup, 0.5);
  const warm = await scenario.warmup(target, warmupSeconds, ctx);
  if (!scenario.bytesThroughput && warm.requests === 0) {
    throw new Error(`warm-up: no successful requests (${warm.errors} failed${warm.unfinished ? `, ${warm.unfinished} unanswered` : ''})`);
  }

  const cpuBefore = pids.length > 0 ? sampleTree(pids).cpuSeconds : null;
  const lat = await scenario.latency(target, opts.latencyDuration, ctx);
  const cpuAfter = pids.length > 0 ? sampleTree(pids).cpuSeconds : null;
  if (lat.ok === 0) throw new Error(`latency run: no successful requests (${lat.errors} failed)`);
  const cpuSPer1000 = cpuBefore !== null && cpuAfter !== null ? (cpuAfter - cpuBefore) / (lat.ok / 1000) : null;

  assertAlive(inst.processes);
  const thrCpuBefore = pids.length > 0 ? sampleTree(pids).cpuSeconds : null;
  const t0 = performance.now();
  const { value: thr, peakMb: rssPeak } = await peakRssDuring(pids, () => scenario.throughput(target, opts.duration, ctx));
  const wall = (performance.now() - t0) / 1000;
  assertAlive(inst.processes); // a proxy that died under load does not get the figures of its last seconds
  if (scenario.bytesThroughput ? !thr.mbPerS : thr.requests === 0) {
    throw new Error(`saturated run: nothing got through (${thr.errors} failed${thr.unfinished ? `, ${thr.unfinished} unanswered` : ''})`);
  }
  const thrCpuAfter = pids.length > 0 ? sampleTree(pids).cpuSeconds : null;
  let cpuSPerGib: number | null = null;
  if (scenario.bytesThroughput && thrCpuBefore !== null && thrCpuAfter !== null && thr.mbPerS && thr.mbPerS > 0) {
    // Steady-state estimate: proxy CPU seconds per wall second over GiB per second.
    cpuSPerGib = (thrCpuAfter - thrCpuBefore) / wall / (thr.mbPerS / 1024);
  }
  return {
    round,
    throughputRps: scenario.bytesThroughput ? null : thr.rps,
    mbPerS: scenario.bytesThroughput ? (thr.mbPerS ?? null) : null,
    p50Ms: lat.p50Ms,
    p99Ms: lat.p99Ms,
    cpuSPer1000,
    cpuSPerGib,
    rssLoadMb: rssPeak,
    errors: thr.errors + lat.errors,
    requests: thr.requests + lat.ok + lat.errors,
  };
}

function progress(scenario: Scenario, round: number, rounds: number, path: string, r: RoundResult | string): void {
  const head = `[${scenario.id} ${round}/${rounds}] ${path.padEnd(18)}`;
  if (typeof r === 'string') {
    console.error(`${head}failed: ${r}`);
    return;
  }
  const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
  const thr = scenario.bytesThroughput ? `${f(r.mbPerS, 1)} MiB/s` : `${f(r.throughputRps, 0)} req/s`;
  const errs = r.errors > 0 ? `  errors ${r.errors}` : '';
  console.error(`${head}${thr}  p50 ${f(r.p50Ms, 3)} p99 ${f(r.p99Ms, 3)} ms  cpu ${f(r.cpuSPer1000, 4)} s/1k  rss ${f(r.rssLoadMb, 1)} MiB${errs}`);
}

interface FamilyPaths {
  family: Family;
  /** Running paths, direct first; a crashed one is replaced in place by its restart. */
  instances: PathInstance[];
  /** Paths that could not start (n/a, skipped, failed), with the reason. */
  unavailable: PathSeries[];
  idleRssMb: Map<string, number | null>;
  peerOf: Map<string, Peer>;
}

/** Starts every selected path of a family, records its idle RSS and probes it. */
async function startPaths(
  family: Family,
  env: BenchEnv,
  pathOk: (path: string) => boolean,
  missingPeer: Record<string, string | null>,
): Promise<FamilyPaths> {
  const out: FamilyPaths = {
    family,
    instances: [directInstance(family, env)],
    unavailable: [],
    idleRssMb: new Map([['direct', null]]),
    peerOf: new Map(),
  };
  for (const peer of peers) {
    for (const path of peer.paths(family)) {
      if (!pathOk(path)) continue;
      let inst: PathInstance | null = null;
      try {
        const missing = missingPeer[path];
        if (missing) throw new NotApplicable(missing);
        out.peerOf.set(path, peer);
        inst = await peer.start(family, env, path);
        out.idleRssMb.set(path, sampleTree(inst.processes.map((p) => p.pid)).rssMb);
        await probe(family, { port: inst.port, authority: inst.authority });
        out.instances.push(inst);
      } catch (e) {
        let reason = errorText(e);
        let status: PathSeries['status'] = 'failed';
        if (e instanceof NotApplicable) status = 'n/a';
        else if (path.startsWith('mycel') && inst === null) {
          status = 'skipped';
          reason = `sidecar not available: ${reason}`;
        }
        if (inst !== null) await inst.stop();
        if (status === 'skipped') console.log(`${path}: skipped (${reason})`);
        else console.error(`bench: ${path} ${family}: ${status}: ${reason}`);
        out.unavailable.push({ path, status, reason, rssIdleMb: null, rounds: [] });
      }
    }
  }
  return out;
}

const pathOrder = ['direct', 'nginx', 'haproxy', 'mycel', 'mycel-h2transport', ...Object.keys(VARIANTS)];

/** All rounds of one scenario, paths interleaved within each round; a crashed proxy is restarted before its next cell. */
async function runScenario(
  scenario: Scenario,
  paths: FamilyPaths,
  env: BenchEnv,
  opts: Options,
  ctx: ScenarioContext,
): Promise<{ all: PathSeries[]; restartNotes: string[] }> {
  const byPath = new Map<string, PathSeries>(
    paths.instances.map((i) => [i.path, { path: i.path, status: 'ok', rssIdleMb: paths.idleRssMb.get(i.path) ?? null, rounds: [] }]),
  );
  const restarts = new Map<string, number[]>(); // "<path> had crashed (<why>)" -> rounds it was restarted before
  for (let round = 1; round <= opts.rounds; round++) {
    for (let idx = 0; idx < paths.instances.length; idx++) {
      let inst = paths.instances[idx] as PathInstance;
      let result: RoundResult | null = null;
      let fresh = round === 1;
      const crashed = inst.processes.find((p) => p.hasExited());
      if (crashed) {
        fresh = true;
        const why = `${crashed.name} ${crashed.exitDescription()}: ${crashed.failureReason()}`;
        await inst.stop();
        try {
          inst = await (paths.peerOf.get(inst.path) as Peer).start(paths.family, env, inst.path);
          paths.instances[idx] = inst;
          const key = `${inst.path} had crashed (${why})`;
          restarts.set(key, [...(restarts.get(key) ?? []), round]);
        } catch (e) {
          result = failedRound(round, `had crashed (${why}) and could not restart: ${errorText(e)}`);
        }
      }
      if (result === null) {
        try {
          result = await measure(scenario, inst, round, opts, ctx, fresh);
        } catch (e) {
          const dead = inst.processes.find((p) => p.hasExited());
          result = failedRound(round, dead ? `${dead.name} ${dead.exitDescription()}: ${dead.failureReason()}` : errorText(e));
        }
      }
      progress(scenario, round, opts.rounds, inst.path, result.error ?? result);
      byPath.get(inst.path)?.rounds.push(result);
    }
  }
  const all = [...byPath.values(), ...paths.unavailable].sort((a, b) => pathOrder.indexOf(a.path) - pathOrder.indexOf(b.path));
  const restartNotes = [...restarts].map(([what, rounds]) => `${what}; restarted before round${rounds.length > 1 ? 's' : ''} ${rounds.join(', ')}`);
  return { all, restartNotes };
}

/**
 * The multi-host scenario (bench/hosts.ts) in a process of its own, after the single-host ones: it builds network
 * namespaces and writes bench/results/hosts-latest.json. Without root it is skipped, and says so.
 */
async function multiHost(opts: Options): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('\n== two-hop path across hosts [hosts]: skipped (needs root for network namespaces and iptables; run npm run bench:hosts as root)');
    return;
  }
  const args = [join(repoRoot, 'dist', 'bench', 'hosts.js'), '--rounds', String(opts.rounds), '--duration', String(opts.duration), '--warmup', String(opts.warmup)];
  if (opts.keepTmp) args.push('--keep-tmp');
  console.log('');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`the multi-host scenario (bench/hosts.js) failed with exit code ${code}`);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  // `hosts` names the multi-host scenario; the other --only tokens select among the single-host ones.
  const only = opts.only.filter((t) => t !== 'hosts');
  const hosts = opts.only.length === 0 || only.length < opts.only.length;
  if (opts.only.length === 0 || only.length > 0) await singleHost({ ...opts, only });
  if (hosts) await multiHost(opts);
}

async function singleHost(opts: Options): Promise<void> {
  installCleanup();
  const started = Date.now();
  const date = new Date().toISOString();
  const loadAtStart = loadNow();

  for (const tool of ['wrk', 'h2load', 'openssl']) {
    if (!have(tool)) throw new Error(`${tool} is not installed (Debian: apt-get install wrk nghttp2-client openssl)`);
  }
  const cpuCount = cpus().length;
  const canPin = cpuCount >= 2 && have('taskset');
  const cpuLoad = canPin ? '0' : null;
  const cpuProxy = canPin ? '1' : null;
  if (canPin) pinSelf('0');
  const pinning = canPin
    ? 'taskset -c 0: load generators (wrk, h2load, Node load workers), upstream apps (nginx 1 worker, gRPC and TCP Node servers) and the runner; ' +
      'taskset -c 1: both proxy hops of every path (nginx 1 worker per hop, HAProxy nbthread 1 per hop, one Node process per Mycel sidecar)'
    : `no pinning (${cpuCount} cpu${cpuCount === 1 ? '' : 's'}${have('taskset') ? '' : ', no taskset'})`;

  const tmpDir = mkdtempSync(join(tmpdir(), 'mycel-bench-'));
  chmodSync(tmpDir, 0o755); // nginx workers run as nobody and must reach the upstream's static file
  if (opts.keepTmp) console.error(`bench: keeping ${tmpDir}`);
  else removeOnExit(tmpDir);
  mkdirSync(join(tmpDir, 'certs'));
  preloadWorkers(['node-worker']);
  const certs = await makeCerts(join(tmpDir, 'certs'));

  const { scenarioOk, pathOk } = selection(opts.only);
  const selected = scenarios.filter((s) => scenarioOk(s.id));
  if (selected.length === 0) throw new Error(`--only ${opts.only.join(',')} matches no scenario`);

  const upstream = await startUpstream(tmpDir, cpuLoad);
  const env: BenchEnv = { tmpDir, certs, cpuLoad, cpuProxy, upstream: upstream.ports };
  const ctx: ScenarioContext = { tmpDir, cpuLoad, fixedRate: opts.rate, grpcClient: opts.grpcClient };
  const havePeer: Record<string, string | null> = {
    nginx: have('nginx') ? null : 'nginx is not installed',
    haproxy: have('haproxy') ? null : 'haproxy is not installed',
  };

  const series = new Map<string, PathSeries[]>();
  const notes = new Map<string, string[]>();
  const cells = selected.reduce((n, s) => n + 1 + peers.reduce((k, p) => k + p.paths(s.family).filter(pathOk).length, 0), 0);
  const perCell = opts.duration + opts.latencyDuration + 0.7; // + start-up of the tools, staggering, sampling
  const estimate = cells * (opts.rounds * perCell + opts.warmup + (opts.rounds - 1) * Math.min(opts.warmup, 0.5));
  console.error(`bench: ${selected.length} scenario(s), ${cells} path rows, ${opts.rounds} round(s); about ${Math.ceil(estimate / 60)} min`);

  for (const family of families) {
    const famScenarios = selected.filter((s) => s.family === family);
    if (famScenarios.length === 0) continue;
    const paths = await startPaths(family, env, pathOk, havePeer);
    try {
      for (const scenario of famScenarios) {
        const { all, restartNotes } = await runScenario(scenario, paths, env, opts, ctx);
        series.set(scenario.id, all);
        notes.set(scenario.id, [...paths.instances.flatMap((i) => i.notes), ...restartNotes]);
      }
    } finally {
      await Promise.all(paths.instances.map((i) => i.stop()));
    }
  }
  await upstream.stop();

  const blocks: ScenarioBlock[] = selected.map((s) => ({
    id: s.id,
    title: s.title,
    load: s.load,
    bytes: s.bytesThroughput,
    summaries: aggregateScenario(series.get(s.id) ?? [], s.bytesThroughput),
    notes: notes.get(s.id) ?? [],
  }));
  const report: ReportJson = {
    date,
    machine: { ...machineInfo(loadAtStart), ...peerVersions() },
    pinning,
    rounds: opts.rounds,
    settings: {
      duration_s: opts.duration,
      latency_duration_s: opts.latencyDuration,
      warmup_s: opts.warmup,
      fixed_rate_rps: opts.rate,
      quick: opts.quick,
      only: opts.only,
      grpc_client: opts.grpcClient,
    },
    method: [
      'throughput: saturated run, requests/s (MiB/s for TCP); median over rounds',
      `p50/p99: fixed-rate run at ${opts.rate}/s, open loop (h2load --rps per connection; Node workers pace by the clock), nearest-rank percentiles of successful requests; median over rounds`,
      '+p50/+p99: latency added over direct, difference taken within each round, then the median',
      'cpu: utime+stime (/proc/<pid>/stat) of both hops and their children, before/after the fixed-rate run, per 1000 requests; resolution 1/CLK_TCK',
      'RSS: VmRSS of both hops summed; idle = after start-up, before any traffic; load = peak while saturated (median over rounds); MiB = 2^20 bytes',
    ],
    scenarios: Object.fromEntries(blocks.map((b) => [b.id, b.summaries])),
    notes: Object.fromEntries(blocks.map((b) => [b.id, b.notes])),
  };
  report.settings.wall_time_s = Math.round((Date.now() - started) / 1000);

  console.log(formatHeader(report));
  for (const b of blocks) console.log(`\n${formatScenario(b, opts.rate)}`);
  const written = writeReport(join(repoRoot, 'bench', 'results'), report);
  console.log(`\nwrote ${written.latest} and ${written.history} (${report.settings.wall_time_s} s)`);
}

runMain(main);
