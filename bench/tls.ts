// TLS benchmark: (1) the rate of new TLS 1.3 connections with a verified client certificate (one small request each)
// at a Mycel sidecar's inbound port, nginx and HAProxy; (2) the latency and CPU that mTLS adds to a hop (plain text vs
// mTLS on the same listener) and the two-hop mesh path next to direct. `npm run bench:tls -- --help` for the flags.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregateScenario, roundSummary, type PathSeries, type PathSummary, type RoundResult } from './lib/aggregate.js';
import { makeCerts, spiffeIdFor } from './lib/certs.js';
import { parseFlags, positiveFlag } from './lib/cli-options.js';
import { latencySummary, preloadWorkers, runWorker } from './lib/loadgen.js';
import { have, loadNow, machineInfo, peerVersions } from './lib/machine.js';
import { pacedLoad, type PacedTls } from './lib/paced-load.js';
import { installCleanup, pinSelf, processTree, removeOnExit, repoRoot, runMain, sampleProcesses, sampleTree, type Managed } from './lib/processes.js';
import { median, round } from './lib/stats.js';
import { capacityPerCore, formatTlsAdded, tlsAdded, type TlsAddedRatio, type TlsAddedReport } from './lib/tls-report.js';
import { haproxyPeer } from './peers/haproxy.js';
import { mycelPeer } from './peers/mycel.js';
import { nginxPeer } from './peers/nginx.js';
import type { BenchEnv } from './peers/peer.js';
import { startHaproxyOneHop, startMycelOneHop, startNginxOneHop, type OneHop } from './peers/tls-servers.js';
import { startUpstream } from './peers/upstream.js';
import { formatScenario } from './report.js';
import type { HandshakeWorkerResult } from './workers/tls-handshakes.js';

interface Options {
  only: string[];
  rounds: number;
  duration: number;
  warmup: number;
  rate: number;
  connections: number;
  clientWorkers: number;
  keepTmp: boolean;
}

const usage = `usage: npm run bench:tls -- [options]   (or: node dist/bench/tls.js after a build)
  --only handshake|latency   run one of the two parts (default both)
  --rounds N                 rounds, the rows interleaved in each (default 3)
  --duration S               seconds of each measured run (default 3)
  --warmup S                 seconds of load before a row's first round (default 2, enough for the sidecars' JIT;
                             later rounds min(S, 0.5))
  --rate N                   requests per second of the latency runs (default 1000)
  --connections N            concurrent connections of the handshake runs, over all client workers (default 32)
  --client-workers N         load processes of the handshake runs (default 2)
  --keep-tmp                 keep the temporary directory (configs, certs, proxy logs)`;

function parseOptions(argv: string[]): Options {
  const v = parseFlags(argv, {
    only: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rate: { type: 'string' },
    connections: { type: 'string' },
    'client-workers': { type: 'string' },
    'keep-tmp': { type: 'boolean', default: false },
  }, usage);
  return {
    only: (v.only ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0),
    rounds: positiveFlag('rounds', v.rounds, 3, usage, true),
    duration: positiveFlag('duration', v.duration, 3, usage),
    warmup: positiveFlag('warmup', v.warmup, 2, usage),
    rate: positiveFlag('rate', v.rate, 1000, usage, true),
    connections: positiveFlag('connections', v.connections, 32, usage, true),
    clientWorkers: positiveFlag('client-workers', v['client-workers'], 2, usage, true),
    keepTmp: v['keep-tmp'] ?? false,
  };
}

/** Where one row's load goes and which processes it measures (none for direct). */
interface Row {
  path: string;
  port: number;
  /** TLS 1.3 with web's client certificate; otherwise plain text. */
  tls: boolean;
  processes: Managed[];
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 300);

function failedRound(roundNo: number, error: string): RoundResult {
  return { round: roundNo, throughputRps: null, mbPerS: null, p50Ms: null, p99Ms: null, cpuSPer1000: null, cpuSPerGib: null, rssLoadMb: null, errors: 0, requests: 0, error };
}

// ---- (1) handshakes ----

/** CPU cores kept busy during a handshake run: the server's, and the load side's (client workers + upstream). */
interface Busy {
  server: number | null;
  load: number | null;
}

/** One closed-loop run of all client workers against a row, started together; the server's CPU and RSS sampled. */
async function handshakeRun(row: Row, seconds: number, o: Options, env: BenchEnv, upstream: Managed[]): Promise<{ result: RoundResult; busy: Busy }> {
  const pids = row.processes.map((p) => p.pid);
  const perWorker = Math.ceil(o.connections / o.clientWorkers);
  const leaf = env.certs.leaves.web;
  const workerEnv: Record<string, string> = {
    TARGET_PORT: String(row.port),
    CONNECTIONS: String(perWorker),
    DURATION_MS: String(Math.round(seconds * 1000)),
    REQUEST_PATH: '/small',
    // Node needs a few hundred ms to start each worker on a busy core: they all begin at the same moment.
    START_AT: String(Date.now() + 800),
    ...(row.tls ? { CERT: leaf.cert, KEY: leaf.key, CA: env.certs.ca, SERVER_ID: spiffeIdFor('api') } : {}),
  };
  const upstreamPids = processTree(upstream.map((p) => p.pid));
  const before = pids.length > 0 ? sampleTree(pids).cpuSeconds : null;
  const upBefore = sampleProcesses(upstreamPids).cpuSeconds;
  let rssPeak: number | null = null;
  const timer = setInterval(() => {
    if (pids.length > 0) rssPeak = Math.max(rssPeak ?? 0, sampleTree(pids).rssMb);
  }, 250);
  let results: HandshakeWorkerResult[];
  try {
    results = await Promise.all(
      Array.from({ length: o.clientWorkers }, () =>
        runWorker<HandshakeWorkerResult>('tls-handshakes', workerEnv, { cpu: env.cpuLoad, timeoutMs: seconds * 1000 + 30_000 })),
    );
  } finally {
    clearInterval(timer);
  }
  const after = pids.length > 0 ? sampleTree(pids).cpuSeconds : null;
  const upAfter = sampleProcesses(upstreamPids).cpuSeconds;
  const ok = results.reduce((n, r) => n + r.ok, 0);
  const errors = results.reduce((n, r) => n + r.errors, 0);
  const wall = Math.max(...results.map((r) => r.seconds));
  if (ok === 0) throw new Error(`no successful handshake (${errors} failed${results[0]?.firstError ? `: ${results[0].firstError}` : ''})`);
  const firstError = results.find((r) => r.firstError !== undefined)?.firstError;
  if (firstError !== undefined) console.error(`bench: ${row.path}: ${errors} failed connection(s), first: ${firstError}`);
  const latencies = results.flatMap((r) => r.latenciesUs.map((us) => us / 1000)).sort((a, b) => a - b);
  const cpu = before !== null && after !== null ? after - before : null;
  const clientCpu = results.reduce((n, r) => n + r.cpuSeconds, 0);
  return {
    result: {
      round: 0,
      throughputRps: ok / wall,
      mbPerS: null,
      ...latencySummary(latencies),
      cpuSPer1000: cpu === null ? null : cpu / (ok / 1000),
      cpuSPerGib: null,
      rssLoadMb: rssPeak,
      errors,
      requests: ok + errors,
    },
    busy: { server: cpu === null ? null : cpu / wall, load: (clientCpu + (upAfter - upBefore)) / wall },
  };
}

// ---- (2) latency at a fixed rate ----

/** Warm-up and measured window at the fixed rate over keep-alive connections; the server's CPU over the window. */
async function latencyRun(row: Row, warmupS: number, o: Options, tls: PacedTls): Promise<RoundResult> {
  const tree = processTree(row.processes.map((p) => p.pid));
  let before: number | null = null;
  const r = await pacedLoad(row.port, {
    authority: 'api',
    path: '/small',
    rate: o.rate,
    warmupS,
    seconds: o.duration,
    ...(row.tls ? { tls } : {}),
    onMeasureStart: () => {
      if (tree.length > 0) before = sampleProcesses(tree).cpuSeconds;
    },
  });
  const sample = tree.length > 0 ? sampleProcesses(tree) : null;
  if (r.ok === 0) throw new Error(`no successful request (${r.errors} failed)`);
  return {
    round: 0,
    throughputRps: null,
    mbPerS: null,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    cpuSPer1000: before !== null && sample !== null ? (sample.cpuSeconds - before) / (r.ok / 1000) : null,
    cpuSPerGib: null,
    rssLoadMb: sample?.rssMb ?? null,
    errors: r.errors,
    requests: r.ok + r.errors,
  };
}

// ---- blocks and output ----

interface Block {
  id: string;
  title: string;
  load: string;
  rows: Row[];
}

const f = (v: number | null | undefined, d: number): string => (v == null ? '-' : v.toFixed(d));
async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const want = (part: string): boolean => o.only.length === 0 || o.only.includes(part);
  installCleanup();
  const started = Date.now();
  const loadAtStart = loadNow();
  const loadSamples: number[] = [loadAtStart];
  for (const tool of ['nginx', 'haproxy', 'openssl']) {
    if (!have(tool)) throw new Error(`${tool} is not installed (Debian: apt-get install nginx haproxy openssl)`);
  }
  const canPin = cpus().length >= 2 && pinSelf('0');
  const dir = mkdtempSync(join(tmpdir(), 'mycel-bench-tls-'));
  if (o.keepTmp) console.error(`bench: keeping ${dir}`);
  else removeOnExit(dir);
  mkdirSync(join(dir, 'certs'));
  preloadWorkers(['node-worker', 'tls-handshakes']); // node-worker: the upstream's gRPC and TCP apps
  const certs = await makeCerts(join(dir, 'certs'));
  const cpuLoad = canPin ? '0' : null;
  const upstream = await startUpstream(dir, cpuLoad);
  const env: BenchEnv = { tmpDir: dir, certs, cpuLoad, cpuProxy: canPin ? '1' : null, upstream: upstream.ports };
  const pacedTls: PacedTls = { cert: certs.leaves.web.cert, key: certs.leaves.web.key, ca: certs.ca, serverId: spiffeIdFor('api') };

  const nginx = await startNginxOneHop(env);
  const haproxy = await startHaproxyOneHop(env);
  const strict = await startMycelOneHop(env, 'STRICT');
  const permissive = await startMycelOneHop(env, 'PERMISSIVE');
  const meshPaths = want('latency') ? [await nginxPeer.start('http1', env, 'nginx'), await haproxyPeer.start('http1', env, 'haproxy'), await mycelPeer.start('http1', env, 'mycel')] : [];
  const tlsRow = (path: string, s: OneHop): Row => ({ path, port: s.tlsPort, tls: true, processes: s.processes });
  const plainRow = (path: string, s: OneHop): Row => ({ path, port: s.plainPort as number, tls: false, processes: s.processes });
  const direct: Row = { path: 'direct', port: env.upstream.http1, tls: false, processes: [] };

  const handshake: Block = {
    id: 'handshake',
    title: 'New TLS 1.3 connections with a verified client certificate, one request each (req/s = handshakes/s)',
    load: `${o.connections} closed-loop connections over ${o.clientWorkers} Node client processes, GET /small with Connection: close; ` +
      'direct = plain TCP to the upstream; mycel = a sidecar of api alone, STRICT, its inbound port',
    rows: [direct, tlsRow('nginx', nginx), tlsRow('haproxy', haproxy), tlsRow('mycel', strict)],
  };
  const latencyBlocks: Block[] = [
    {
      id: 'hop-plaintext',
      title: 'One hop, plain text: client -> server -> upstream, keep-alive',
      load: `open loop, GET /small; mycel = api's sidecar in PERMISSIVE mode, plain HTTP/1.1 on its inbound port`,
      rows: [direct, plainRow('nginx', nginx), plainRow('haproxy', haproxy), plainRow('mycel', permissive)],
    },
    {
      id: 'hop-mtls',
      title: 'One hop, mTLS: the same servers over TLS 1.3 with web\'s client certificate, keep-alive',
      load: 'open loop, GET /small; mycel = the same PERMISSIVE sidecar over mTLS; mycel-strict = the STRICT sidecar of the handshake runs',
      rows: [direct, tlsRow('nginx', nginx), tlsRow('haproxy', haproxy), tlsRow('mycel', permissive), tlsRow('mycel-strict', strict)],
    },
    {
      id: 'two-hop',
      title: 'Two hops, mTLS between them (the bench/run.ts paths): client -> A -> mTLS, pooled -> B (STRICT) -> upstream',
      load: 'open loop, GET /small, plain HTTP/1.1 into hop A; cpu = both hops',
      rows: [direct, ...meshPaths.map((p) => ({ path: p.path, port: p.port, tls: false, processes: p.processes }))],
    },
  ];
  const blocks = [...(want('handshake') ? [handshake] : []), ...(want('latency') ? latencyBlocks : [])];
  if (blocks.length === 0) throw new Error(`--only ${o.only.join(',')}: expected handshake or latency`);

  // Series per block and path; direct's latency run is measured once per round and shared by the latency blocks.
  const series = new Map<string, PathSeries>();
  const busy = new Map<string, Busy[]>();
  // direct's latency series is shared by the latency blocks (one run per round); every other row has its own.
  const key = (b: Block, row: Row): string => `${b.id === 'handshake' ? 'handshake' : row.path === 'direct' ? 'latency' : b.id}/${row.path}`;
  const idleRss = new Map<Managed[], number>();
  for (const b of blocks) for (const row of b.rows) if (row.processes.length > 0) idleRss.set(row.processes, sampleTree(row.processes.map((p) => p.pid)).rssMb);
  const push = (k: string, row: Row, r: RoundResult): void => {
    let s = series.get(k);
    if (s === undefined) series.set(k, (s = { path: row.path, status: 'ok', rssIdleMb: idleRss.get(row.processes) ?? null, rounds: [] }));
    s.rounds.push(r);
  };
  for (let roundNo = 1; roundNo <= o.rounds; roundNo++) {
    const warmup = roundNo === 1 ? o.warmup : Math.min(o.warmup, 0.5);
    for (const b of blocks) {
      for (const row of b.rows) {
        const k = key(b, row);
        if (series.get(k)?.rounds.some((r) => r.round === roundNo)) continue; // direct, already measured this round
        let r: RoundResult;
        try {
          if (b.id === 'handshake') {
            await handshakeRun(row, warmup, o, env, upstream.processes);
            const m = await handshakeRun(row, o.duration, o, env, upstream.processes);
            r = m.result;
            busy.set(row.path, [...(busy.get(row.path) ?? []), m.busy]);
          } else {
            r = await latencyRun(row, warmup, o, pacedTls);
          }
          r.round = roundNo;
        } catch (e) {
          const dead = row.processes.find((p) => p.hasExited());
          r = failedRound(roundNo, dead ? `${dead.name} ${dead.exitDescription()}: ${dead.failureReason()}` : errorText(e));
        }
        push(k, row, r);
        loadSamples.push(loadNow());
        const head = `[${b.id} ${roundNo}/${o.rounds}] ${row.path.padEnd(14)}`;
        console.error(r.error !== undefined ? `${head}failed: ${r.error}` :
          `${head}${r.throughputRps === null ? '' : `${f(r.throughputRps, 0)}/s  `}p50 ${f(r.p50Ms, 3)} p99 ${f(r.p99Ms, 3)} ms  cpu ${f(r.cpuSPer1000, 4)} s/1k${r.errors > 0 ? `  errors ${r.errors}` : ''}`);
      }
    }
  }
  await Promise.all([...meshPaths.map((p) => p.stop()), nginx.stop(), haproxy.stop(), strict.stop(), permissive.stop(), upstream.stop()]);

  const seriesOf = (b: Block): PathSeries[] => b.rows.map((row) => series.get(key(b, row))).filter((s): s is PathSeries => s !== undefined);
  const summaries = new Map(blocks.map((b) => [b.id, aggregateScenario(seriesOf(b), false)]));
  const added = want('latency') ? tlsAdded(seriesOf(latencyBlocks[0] as Block), seriesOf(latencyBlocks[1] as Block)) : null;
  const hsSummaries = summaries.get('handshake') ?? {};
  // Per row: cores kept busy (server, and CPU 0's client workers + upstream), and what one saturated server core would do.
  const busyMedian = Object.fromEntries([...busy].map(([p, bs]) => [p, {
    server_cores: round(median(bs.map((x) => x.server)), 3),
    load_cores: round(median(bs.map((x) => x.load)), 3),
    capacity_per_core: round(capacityPerCore(hsSummaries[p]?.cpu_s_per_1000_req), 0),
  }]));
  const mycelCapacity = busyMedian.mycel?.capacity_per_core ?? null;

  const machine = { ...machineInfo(loadAtStart), ...peerVersions(), loadavg_max: Math.max(...loadSamples) };
  const pinning = canPin ? 'taskset -c 0: client workers, the runner (paced client), upstream nginx; taskset -c 1: the servers (nginx 1 worker, HAProxy nbthread 1, each sidecar one Node process)' : 'no pinning';
  console.log(`Mycel TLS benchmark ${new Date(started).toISOString()}`);
  console.log(`machine: ${machine.cpus} cpu (${machine.cpu_model}), node ${machine.node}, ${machine.nginx}, ${machine.haproxy}`);
  console.log(`load average (1 min) start / max / end: ${machine.loadavg_start} / ${machine.loadavg_max} / ${machine.loadavg_end} (other work on the machine adds noise)`);
  console.log(`pinning: ${pinning}`);
  console.log(`rounds: ${o.rounds} (medians), ${o.duration} s measured after ${o.warmup} s warm-up; latency runs at ${o.rate} req/s`);
  for (const b of blocks) {
    const block = { id: b.id, title: b.title, load: b.load, bytes: false, summaries: summaries.get(b.id) as Record<string, PathSummary>, notes: [] };
    console.log(`\n${formatScenario(block, b.id === 'handshake' ? null : o.rate)}`);
    if (b.id === 'handshake') {
      console.log('   cores busy during the run (CPU seconds / wall second) and handshakes/s of one saturated server core (1000 / cpu s per 1k):');
      for (const [p, x] of Object.entries(busyMedian)) {
        const limited = x.server_cores !== null && x.server_cores < 0.9 && p !== 'direct' ? '  (server core not saturated: rate limited by the client side or other load)' : '';
        const cap = p === 'direct' ? '' : `, one core ~${f(x.capacity_per_core, 0)}/s${p !== 'mycel' && mycelCapacity !== null && x.capacity_per_core ? ` (mycel ${(mycelCapacity / x.capacity_per_core).toFixed(2)}x)` : ''}`;
        console.log(`     ${p.padEnd(10)} server ${f(x.server_cores, 2)}, load side ${f(x.load_cores, 2)}${cap}${limited}`);
      }
    }
  }
  if (added !== null) console.log(`\n${formatTlsAdded(added)}`);

  const report = {
    date: new Date(started).toISOString(),
    machine,
    pinning,
    settings: { rounds: o.rounds, duration_s: o.duration, warmup_s: o.warmup, fixed_rate_rps: o.rate, connections: o.connections, client_workers: o.clientWorkers, only: o.only, wall_time_s: Math.round((Date.now() - started) / 1000) },
    method: [
      'handshake: closed loop, each connection = TCP connect + TLS 1.3 handshake (ECDSA P-256 leaves, client certificate verified, no session resumption) + GET /small + close; req/s = handshakes/s; p50/p99 of the whole connection; cpu = server process(es) per 1000 handshakes; busy = CPU seconds per wall second',
      'latency: open loop at the fixed rate over keep-alive connections (Node http/https agent in the runner), nearest-rank p50/p99; cpu = server process(es) over the measured window per 1000 requests',
      '+p50/+p99: over direct, paired by round, median; tls_added: hop-mtls minus hop-plaintext of the same process, paired by round, median',
    ],
    handshake: want('handshake') ? { paths: roundAll(summaries.get('handshake')), busy: busyMedian } : null,
    latency: want('latency') ? { ...Object.fromEntries(latencyBlocks.map((b) => [b.id, roundAll(summaries.get(b.id))])), tls_added: added === null ? null : roundTlsAdded(added) } : null,
  };
  const out = join(repoRoot, 'bench', 'results', 'tls-latest.json');
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${out} (${report.settings.wall_time_s} s)`);
}

/** The tls-added figures rounded for the JSON file (ms to µs, CPU to 10 µs per 1000, ratios to 3 decimals). */
function roundTlsAdded(a: TlsAddedReport): TlsAddedReport {
  const paths = Object.fromEntries(Object.entries(a.paths).map(([p, v]) => [p, {
    added_p50_ms: round(v.added_p50_ms, 3),
    added_p99_ms: round(v.added_p99_ms, 3),
    added_cpu_s_per_1000_req: round(v.added_cpu_s_per_1000_req, 5),
  }]));
  const r = (x: TlsAddedRatio): TlsAddedRatio => ({ p50: round(x.p50, 3), p99: round(x.p99, 3), cpu: round(x.cpu, 3) });
  return { paths, mycel_vs: a.mycel_vs === null ? null : { nginx: r(a.mycel_vs.nginx), haproxy: r(a.mycel_vs.haproxy) } };
}

function roundAll(s: Record<string, PathSummary> | undefined): Record<string, PathSummary> {
  return Object.fromEntries(Object.entries(s ?? {}).map(([p, v]) => [p, roundSummary(v)]));
}

runMain(main);
