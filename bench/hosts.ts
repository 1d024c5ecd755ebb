// Multi-host benchmark: the two-hop path across network namespaces joined by veth (a client on host `web`, the app on
// host `api`), five rows: direct (no proxy), nginx and HAProxy (hop A on web, mTLS to hop B on api), mycel explicit
// (the client calls web's sidecar binding) and mycel transparent (the client calls http://api:8080/ and iptables sends
// it through both sidecars). Prints the table and writes bench/results/hosts-latest.json: figures per row, Mycel's
// ratios against nginx, HAProxy and direct, and transparent against explicit. Needs root, iproute2 and iptables (and
// the SO_ORIGINAL_DST addon for the transparent row; nginx and haproxy for their rows).
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../src/security/dev-ca.js';
import { originalDstUnavailable } from '../src/proxy/transparent/original-dst.js';
import { meshYaml } from '../test/hosts/mesh-hosts.js';
import { createHostBed, type Host } from '../test/hosts/netns-bed.js';
import { aggregateScenario, failedRound, roundSummary, type PathSeries, type PathSummary, type RoundResult } from './lib/aggregate.js';
import { makeCerts } from './lib/certs.js';
import { parseFlags, positiveFlag } from './lib/cli-options.js';
import { wrkThroughput } from './lib/loadgen.js';
import { have, loadNow, machineInfo, peerVersions } from './lib/machine.js';
import type { PacedResult } from './lib/paced-load.js';
import { installCleanup, peakRssDuring, pinSelf, removeOnExit, repoRoot, runBounded, sampleTree, spawnManaged, stopAll, waitUntil, type Managed } from './lib/processes.js';
import { median, ratio, round } from './lib/stats.js';
import { haproxyTwoHops } from './peers/haproxy.js';
import { nginxTwoHops } from './peers/nginx.js';
import type { BenchEnv } from './peers/peer.js';
import { startTwoHops, type TwoHopPlacement } from './peers/two-hops.js';
import { formatScenario, type ScenarioBlock } from './report.js';

const usage = `usage: npm run bench:hosts -- [options]   (or: node dist/bench/hosts.js after a build; needs root)
  --rounds N       rounds, the rows in turn in each (default 3)
  --duration S     seconds of each saturated run (default 3)
  --rate N         requests per second of the fixed-rate latency runs (default 500)
  --warmup S       seconds of load before each measured run (default 1)
  --keep-tmp       keep the temporary directory (configs, certs, proxy logs)`;

const APP_PORT = 8080;
const BINDING = 9191;
const ADMIN = 15000;
/** nginx / HAProxy: hop A's port on web (where the client calls), hop B's TLS port on api. */
const HOP_A = 9292;
const HOP_B = 9443;
const ROWS = ['direct', 'nginx', 'haproxy', 'mycel-explicit', 'mycel-transparent'] as const;
type Row = (typeof ROWS)[number];

interface Options {
  rounds: number;
  duration: number;
  rate: number;
  warmup: number;
  keepTmp: boolean;
}

interface Env {
  dir: string;
  web: Host;
  api: Host;
  cpuLoad: string | null;
  cpuProxy: string | null;
  /** What the nginx and HAProxy hops are built from (their own CA and leaves with CN = service, the app's port). */
  peers: BenchEnv;
}

/** The proxies of one row, started for one round. */
interface Running {
  processes: Managed[];
  stop(): Promise<void>;
}

const APP = `require('node:http').createServer((req, res) => { req.resume(); req.on('end', () => res.end('hello from api\\n')); }).listen(${APP_PORT}, '0.0.0.0', () => console.log('ready'));`;

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 300);

async function sidecar(env: Env, h: Host, service: string, transparent: boolean, extra: string[]): Promise<Managed> {
  const args = [...h.prefix.slice(1), process.execPath, join(repoRoot, 'bin', 'mycel.js'), 'proxy', '--service', service, '--app-port', String(APP_PORT),
    '--config', join(env.dir, 'mesh.yaml'), '--inbound', '0.0.0.0:15006', '--outbound', '127.0.0.1:15001', '--admin', `0.0.0.0:${ADMIN}`,
    '--cert', join(env.dir, `${service}.crt`), '--key', join(env.dir, `${service}.key`), '--ca', join(env.dir, 'ca.crt'),
    // The admin port stays reachable from the runner (else the inbound redirect sends it to the mTLS listener).
    ...(transparent ? ['--transparent', '--exclude-inbound-ports', String(ADMIN)] : []), ...extra];
  const proc = spawnManaged(`sidecar ${service}`, h.prefix[0]!, args, { cpu: env.cpuProxy, cwd: repoRoot, logFile: join(env.dir, `${service}-${transparent ? 't' : 'e'}.log`) });
  await waitUntil(`sidecar ${service} /ready`, async () => {
    try {
      return (await fetch(`http://${h.address}:${ADMIN}/ready`, { signal: AbortSignal.timeout(1000) })).status === 200;
    } catch {
      return false;
    }
  }, { timeoutMs: 30_000, intervalMs: 200, watch: [proc] });
  return proc;
}

async function startMycel(env: Env, transparent: boolean): Promise<Running> {
  const processes: Managed[] = [];
  // One after the other, so that transparent sidecars take their rules out before the next row.
  const stop = async (): Promise<void> => {
    for (const p of processes) await p.stop();
  };
  try {
    processes.push(await sidecar(env, env.api, 'api', transparent, []));
    processes.push(await sidecar(env, env.web, 'web', transparent, transparent ? [] : ['--upstream', `api=127.0.0.1:${BINDING}`]));
  } catch (e) {
    await stop();
    throw e;
  }
  return { processes, stop };
}

/** nginx or HAProxy: hop A on web (all addresses, so the runner sees it start), hop B on api's bridge address. */
async function startPeer(env: Env, row: 'nginx' | 'haproxy'): Promise<Running> {
  const placement: TwoHopPlacement = {
    ports: { a: HOP_A, b: HOP_B, aHost: '0.0.0.0', bHost: env.api.address },
    a: { prefix: env.web.prefix, reachAt: env.web.address },
    b: { prefix: env.api.prefix, reachAt: env.api.address },
  };
  const spec = row === 'nginx' ? nginxTwoHops('http1', env.peers) : haproxyTwoHops('http1', env.peers);
  return startTwoHops(spec, 'http1', env.peers, placement);
}

function startRow(env: Env, row: Row): Promise<Running> {
  if (row === 'direct') return Promise.resolve({ processes: [], stop: async () => undefined });
  if (row === 'nginx' || row === 'haproxy') return startPeer(env, row);
  return startMycel(env, row === 'mycel-transparent');
}

/** Where the client on host web sends for a row: the app itself, hop A / web's binding, or the app's name (intercepted). */
function target(env: Env, row: Row): { host: string; port: number; url: string } {
  const at = (host: string, port: number) => ({ host, port, url: `http://${host}:${port}/` });
  if (row === 'direct') return at(env.api.address, APP_PORT);
  if (row === 'mycel-transparent') return at('api', APP_PORT);
  return at('127.0.0.1', row === 'mycel-explicit' ? BINDING : HOP_A);
}

async function paced(env: Env, row: Row, o: Options): Promise<PacedResult> {
  const t = target(env, row);
  const spec = JSON.stringify({ port: t.port, host: t.host, authority: 'api', path: '/', rate: o.rate, warmupS: o.warmup, seconds: o.duration });
  const r = await runBounded(env.web.prefix[0]!, [...env.web.prefix.slice(1), process.execPath, join(repoRoot, 'dist', 'bench', 'workers', 'paced-client.js'), spec], { cpu: env.cpuLoad, timeoutMs: (o.warmup + o.duration) * 1000 + 30_000 });
  if (r.code !== 0) throw new Error(`paced client failed (${r.code}): ${r.stderr.trim().slice(-300)}`);
  return JSON.parse(r.stdout) as PacedResult;
}

/** One row, one round: saturated run (peak RSS sampled), then the paced run (CPU sampled). */
async function measure(env: Env, row: Row, n: number, o: Options, proxies: readonly Managed[]): Promise<RoundResult> {
  const t = target(env, row);
  const pids = proxies.map((p) => p.pid);
  const { value: thr, peakMb } = await peakRssDuring(pids, () => wrkThroughput({ url: t.url, authority: 'api' }, { connections: 32, seconds: o.duration, cpu: env.cpuLoad, prefix: env.web.prefix }));
  if (thr.requests === 0) throw new Error(`saturated run: nothing got through (${thr.errors} failed)`);
  const before = sampleTree(pids).cpuSeconds;
  const lat = await paced(env, row, o);
  const cpu = sampleTree(pids).cpuSeconds - before;
  if (lat.ok === 0) throw new Error(`paced run: no successful requests (${lat.errors} failed)`);
  for (const p of proxies) if (p.hasExited()) throw new Error(`${p.name} ${p.exitDescription()}: ${p.failureReason()}`);
  // The CPU sample spans the paced run's warm-up too: divide by every request it sent.
  const sent = Math.round(o.rate * (o.warmup + o.duration));
  return {
    round: n, throughputRps: thr.rps, mbPerS: null, p50Ms: lat.p50Ms, p99Ms: lat.p99Ms,
    cpuSPer1000: pids.length === 0 ? null : (cpu / sent) * 1000, cpuSPerGib: null, rssLoadMb: peakMb,
    errors: thr.errors + lat.errors, requests: thr.requests + lat.ok + lat.errors,
  };
}

/** Starts the row's proxies, records their idle RSS, measures, stops them; a failure is that round's result. */
async function runRow(env: Env, row: Row, n: number, o: Options): Promise<{ result: RoundResult; idleMb: number | null }> {
  let running: Running | null = null;
  try {
    running = await startRow(env, row);
    const pids = running.processes.map((p) => p.pid);
    const idleMb = pids.length === 0 ? null : sampleTree(pids).rssMb;
    return { result: await measure(env, row, n, o, running.processes), idleMb };
  } catch (e) {
    return { result: failedRound(n, errorText(e)), idleMb: null };
  } finally {
    await running?.stop();
  }
}

function progress(row: Row, n: number, rounds: number, r: RoundResult): void {
  const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
  const head = `round ${n}/${rounds} ${row.padEnd(18)}`;
  if (r.error !== undefined) process.stderr.write(`${head}failed: ${r.error}\n`);
  else process.stderr.write(`${head}${f(r.throughputRps, 0)} req/s  p50 ${f(r.p50Ms, 3)} p99 ${f(r.p99Ms, 3)} ms  cpu ${f(r.cpuSPer1000, 4)} s/1k  rss ${f(r.rssLoadMb, 1)} MiB\n`);
}

/** Which rows can run here; the others with the reason (a missing Debian package fails the run under CI=true). */
function availableRows(): { rows: Row[]; skipped: PathSeries[] } {
  const rows: Row[] = [];
  const skipped: PathSeries[] = [];
  for (const row of ROWS) {
    let reason: string | null = null;
    if ((row === 'nginx' || row === 'haproxy') && !have(row)) {
      reason = `the Debian package ${row} is not installed (apt-get install ${row})`;
      if (process.env.CI === 'true') throw new Error(`CI=true: ${reason}`);
    } else if (row === 'mycel-transparent') {
      reason = originalDstUnavailable()?.message ?? null;
    }
    if (reason === null) rows.push(row);
    else {
      process.stdout.write(`${row}: skipped (${reason})\n`);
      skipped.push({ path: row, status: 'skipped', reason, rssIdleMb: null, rounds: [] });
    }
  }
  return { rows, skipped };
}

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), { rounds: { type: 'string' }, duration: { type: 'string' }, rate: { type: 'string' }, warmup: { type: 'string' }, 'keep-tmp': { type: 'boolean', default: false } }, usage);
  const o: Options = {
    rounds: positiveFlag('rounds', values.rounds, 3, usage, true),
    duration: positiveFlag('duration', values.duration, 3, usage),
    rate: positiveFlag('rate', values.rate, 500, usage, true),
    warmup: positiveFlag('warmup', values.warmup, 1, usage),
    keepTmp: values['keep-tmp'] ?? false,
  };
  if (process.getuid?.() !== 0) throw new Error('bench:hosts needs root (network namespaces, iptables)');
  installCleanup();
  const loadStart = loadNow();
  const dir = mkdtempSync(join(tmpdir(), 'mycel-bench-hosts-'));
  chmodSync(dir, 0o755); // nginx workers run as nobody and keep their temp directories in here
  if (o.keepTmp) process.stderr.write(`bench:hosts: keeping ${dir}\n`);
  else removeOnExit(dir);
  const cleanups: Array<() => unknown> = [];
  // Children are not handed to bed.track: spawnManaged stops them (also on exit), and the bed's teardown kills what
  // still runs in its namespaces; a PID kept after its process exited could be another process's by then.
  const bed = await createHostBed({ after: (fn) => cleanups.push(fn) }, [{ name: 'web' }, { name: 'api' }], { reachFromTest: true });
  const canPin = cpus().length >= 2 && pinSelf('0');
  const { rows, skipped } = availableRows();
  const series = new Map<Row, PathSeries>();
  const idle = new Map<Row, Array<number | null>>(rows.map((r) => [r, []]));
  try {
    await writeDevCertificates(dir, { services: ['web', 'api'] });
    mkdirSync(join(dir, 'peer-certs'));
    const certs = await makeCerts(join(dir, 'peer-certs'));
    const cpuLoad = canPin ? '0' : null;
    const cpuProxy = canPin ? '1' : null;
    // Only the HTTP/1.1 family runs here; the other upstream ports are never used.
    const peers: BenchEnv = { tmpDir: dir, certs, cpuLoad, cpuProxy, upstream: { http1: APP_PORT, h2c: 0, grpc: 0, tcp: 0 } };
    const env: Env = { dir, web: bed.host('web'), api: bed.host('api'), cpuLoad, cpuProxy, peers };
    // The chaos tests' mesh without their TrafficPolicy: plain two-hop path, HTTP/1.1 between the sidecars.
    writeFileSync(join(dir, 'mesh.yaml'), meshYaml({ web: env.web, apiHosts: [env.api], resilience: false }));
    const app = spawnManaged('app', env.api.prefix[0]!, [...env.api.prefix.slice(1), process.execPath, '-e', APP], { cpu: cpuLoad, logFile: join(dir, 'app.log') });
    await waitUntil('app on api', async () => (await env.api.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${APP_PORT}/`])).stdout === '200', { timeoutMs: 15_000, intervalMs: 200, watch: [app] });
    for (const row of rows) series.set(row, { path: row, status: 'ok', rssIdleMb: null, rounds: [] });
    for (let n = 1; n <= o.rounds; n++) {
      for (const row of rows) {
        const { result, idleMb } = await runRow(env, row, n, o);
        progress(row, n, o.rounds, result);
        series.get(row)!.rounds.push(result);
        idle.get(row)!.push(idleMb);
      }
    }
  } finally {
    await stopAll();
    for (const fn of cleanups) await fn();
  }
  // The proxies start afresh in every round: their idle RSS is the median over rounds too.
  for (const [row, s] of series) s.rssIdleMb = median(idle.get(row) ?? []);
  const all = [...series.values(), ...skipped].sort((a, b) => ROWS.indexOf(a.path as Row) - ROWS.indexOf(b.path as Row));
  report(aggregateScenario(all, false), o, loadStart, canPin);
}

/** What interception costs: mycel-transparent against mycel-explicit (throughput and CPU ratios, latency differences). */
function interceptionCost(t: PathSummary | undefined, e: PathSummary | undefined): Record<string, number | null> | null {
  if (t?.status !== 'ok' || e?.status !== 'ok') return null;
  const diff = (a: number | null | undefined, b: number | null | undefined): number | null => (a == null || b == null ? null : a - b);
  return {
    throughputRatio: round(ratio(t.throughput_rps, e.throughput_rps), 3),
    addedP50Ms: round(diff(t.p50_ms, e.p50_ms), 3),
    addedP99Ms: round(diff(t.p99_ms, e.p99_ms), 3),
    cpuRatio: round(ratio(t.cpu_s_per_1000_req, e.cpu_s_per_1000_req), 3),
  };
}

function report(summaries: Record<string, PathSummary>, o: Options, loadStart: number, pinned: boolean): void {
  const machine = { ...machineInfo(loadStart), ...peerVersions() };
  const pinning = pinned ? 'taskset -c 0: client (wrk, paced client), app and runner; taskset -c 1: both hops of every row' : 'no pinning';
  const notes = [
    'every proxied row: mTLS between the hosts (TLS 1.3, client certificates checked on both sides), HTTP/1.1 over keep-alive connections; the app on api is reached over loopback',
    `nginx: hop A on web (127.0.0.1:${HOP_A} for the client), keepalive pool, proxy_ssl_verify -> hop B on api (ssl_verify_client on); 1 worker per hop`,
    `haproxy: hop A on web (127.0.0.1:${HOP_A}), http-reuse always, ssl verify required + crt -> hop B on api (verify required); nbthread 1 per hop`,
    `mycel-explicit: web's sidecar binding 127.0.0.1:${BINDING} -> api's sidecar inbound (transport.http1: h1); mycel-transparent: http://api:${APP_PORT}/ redirected by iptables on both hosts`,
    'cpu s/1k: both hops, over the paced run including its warm-up; RSS: both hops, idle after start-up and peak while saturated (proxies restart every round: medians)',
    `pinning: ${pinning}`,
  ];
  const block: ScenarioBlock = {
    id: 'hosts',
    title: 'two-hop path across hosts (network namespaces joined by veth)',
    load: `wrk -t1 -c32 GET / for ${o.duration}s on host web; paced client (keep-alive) for ${o.warmup}s warm-up + ${o.duration}s`,
    bytes: false,
    summaries,
    notes,
  };
  const interception = interceptionCost(summaries['mycel-transparent'], summaries['mycel-explicit']);
  process.stdout.write(`Mycel multi-host benchmark ${new Date().toISOString()}\n`);
  process.stdout.write(`machine: ${machine.cpus} cpu (${machine.cpu_model}), kernel ${machine.kernel}, node ${machine.node}, ${machine.nginx}, ${machine.haproxy}; load average ${machine.loadavg_start} -> ${machine.loadavg_end}\n`);
  process.stdout.write(`rounds: ${o.rounds} (medians reported)\n\n${formatScenario(block, o.rate)}\n`);
  if (interception) process.stdout.write(`transparent vs explicit: throughput x${interception.throughputRatio}, p50 ${interception.addedP50Ms} ms, p99 ${interception.addedP99Ms} ms, cpu per request x${interception.cpuRatio}\n`);
  const rows = Object.fromEntries(Object.entries(summaries).map(([k, s]) => [k, roundSummary(s)]));
  const out = { date: new Date().toISOString(), options: o, machine, pinning, rows, transparentVsExplicit: interception, notes };
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(join(repoRoot, 'bench', 'results', 'hosts-latest.json'), JSON.stringify(out, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:hosts failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
