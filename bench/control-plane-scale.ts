// Control-plane scale benchmark: one real `mycel control` (file store, pinned to one CPU) and N simulated proxies in a
// few worker processes; measures connecting them, pushing a change that touches all and one that touches a rare
// service's callers only, and the control plane's RSS and CPU. `npm run bench:control-plane -- --help` for the flags.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClientWorkers } from './lib/client-workers.js';
import { cpuSeconds, rssMb, startControlPlane, type ControlPlaneProcess } from './lib/control-plane-process.js';
import { ensureOpenFiles, openFileLimit } from './lib/fd-limit.js';
import { loadNow, machineInfo } from './lib/machine.js';
import { installCleanup, pinSelf, removeOnExit, repoRoot, sleep } from './lib/processes.js';
import { baseResources, buildModel, meshConfig, rareService, RARE_SERVICE, type MeshModel } from './lib/scale-model.js';
import { formatTable, summarizeChange, TARGETS, verdicts, writeScaleReport, type ChangeRun, type ScaleReport, type SizeResult } from './lib/scale-report.js';
import { percentile } from './lib/stats.js';
import { wallMs } from './lib/wall-clock.js';
import type { ReportReply, StatusReply } from './workers/control-plane-clients.js';

interface Options {
  sizes: number[];
  reps: number;
  workers: number;
  lease: string;
  keepTmp: boolean;
  cpuProf: string | null;
}

const usage = `usage: npm run bench:control-plane -- [options]   (or: node dist/bench/control-plane-scale.js after a build)
  --sizes A,B,...   numbers of simulated proxies, one control plane each (default 100,1000,5000)
  --reps N          repetitions of each change, medians reported (default 5)
  --workers N       client worker processes holding the simulated proxies (default 4)
  --lease D         the control plane's --lease; heartbeats come at the interval its welcome gives (default 10s)
  --cpu-prof DIR    run the control plane under node --cpu-prof, profiles written to DIR at exit
  --keep-tmp        keep the temporary directories (store, control-plane log) and print their paths`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      sizes: { type: 'string' },
      reps: { type: 'string' },
      workers: { type: 'string' },
      lease: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'keep-tmp': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const int = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      console.error(`bench: --${name} expects positive integers, got ${v}\n${usage}`);
      process.exit(2);
    }
    return n;
  };
  return {
    sizes: (values.sizes ?? '100,1000,5000').split(',').map((s) => int('sizes', s.trim().replace(/_/g, ''))),
    reps: int('reps', values.reps ?? '5'),
    workers: int('workers', values.workers ?? '4'),
    lease: values.lease ?? '10s',
    keepTmp: values['keep-tmp'] ?? false,
    cpuProf: values['cpu-prof'] ?? null,
  };
}

const log = (msg: string): void => console.error(`bench: ${msg}`);
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Descriptors one size needs: the control plane holds one socket per proxy, each worker its share, plus slack. */
function descriptorsNeeded(n: number, workers: number): number {
  return n + Math.ceil(n / workers) + 256;
}

/** Polls the workers until no proxy has received anything for `quietMs`; returns the seconds it took. */
async function waitQuiet(workers: ClientWorkers, quietMs: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const replies = (await workers.all({ op: 'status' })) as StatusReply[];
    const last = Math.max(0, ...replies.map((r) => r.lastReceiveAt));
    if (wallMs() - last >= quietMs) return (Date.now() - started) / 1000;
    if (Date.now() - started > timeoutMs) throw new Error(`proxies still receiving config after ${timeoutMs} ms`);
    await sleep(100);
  }
}

interface Context {
  cp: ControlPlaneProcess;
  workers: ClientWorkers;
  model: MeshModel;
}

/** One apply, measured until every target ACKed it (or 30 s passed), then a quiet window for strays. */
async function runChange(ctx: Context, kind: 'all' | 'rare', rep: number): Promise<ChangeRun> {
  const { cp, workers, model } = ctx;
  await workers.all({ op: 'mark', targets: kind === 'all' ? null : model.rareCallers });
  // Every repetition is a real change: the idle timeout or the rare service's endpoint port moves on.
  const resource = kind === 'all' ? meshConfig(`${301 + rep}s`) : rareService(20_001 + rep);
  const cpu0 = cpuSeconds(cp.pid);
  const sent = wallMs();
  const { revision } = await cp.apply([resource]);
  const answered = wallMs();
  const deadline = Date.now() + 30_000;
  let acked = 0;
  let targets = 0;
  for (;;) {
    const counts = await workers.all({ op: 'count', minVersion: revision });
    acked = sum(counts.map((c) => c.acked ?? 0));
    targets = sum(counts.map((c) => c.targets ?? 0));
    if (acked >= targets || Date.now() > deadline) break;
    await sleep(5);
  }
  const cpu1 = cpuSeconds(cp.pid);
  // Whatever reaches a non-target in this window counts against the change's scoping.
  await sleep(kind === 'rare' ? 500 : 200);
  const reports = (await workers.all({ op: 'report', minVersion: revision }, 30_000)) as ReportReply[];
  const latencies = reports.flatMap((r) => r.ackAt).map((at) => at - answered);
  const targetBytes = sum(reports.map((r) => r.targetBytes));
  return {
    rep,
    revision,
    targets,
    acked: latencies.length,
    applyMs: answered - sent,
    lastAckMs: latencies.length > 0 ? Math.max(...latencies) : null,
    lastAckFromSentMs: latencies.length > 0 ? Math.max(...latencies) + (answered - sent) : null,
    p50Ms: percentile(latencies, 50) ?? null,
    p99Ms: percentile(latencies, 99) ?? null,
    cpuS: cpu1 - cpu0,
    bytesPerTarget: targets > 0 ? targetBytes / targets : null,
    otherReceivers: sum(reports.map((r) => r.otherReceivers)),
    otherBytes: sum(reports.map((r) => r.otherBytes)),
  };
}

async function runSize(n: number, opts: Options, cpuControl: string | null, result: SizeResult): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `mycel-cp-scale-${n}-`));
  if (!opts.keepTmp) removeOnExit(dir); // also when a signal or a fatal error ends the run
  let cp: ControlPlaneProcess | null = null;
  let workers: ClientWorkers | null = null;
  try {
    const model = buildModel(n);
    result.model = { services: model.services.length, endpoints: model.endpoints, rareCallers: model.rareCallers.length, distinctViews: model.distinctViews };
    const nodeArgs = opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`] : [];
    const control = await startControlPlane({ dir, cpu: cpuControl, lease: opts.lease, nodeArgs });
    cp = control;
    await cp.apply(baseResources(model.services, '300s', 20_000));
    const tokens = new Map<string, string>();
    for (const s of model.services) tokens.set(s, await cp.joinToken(s));
    await sleep(1000);
    const beforeMb = rssMb(cp.pid);

    // Connect: each worker takes every W-th proxy, so services, endpoints and rare callers spread evenly.
    workers = ClientWorkers.start(Math.min(opts.workers, n));
    const w = workers;
    const shares = Array.from({ length: w.size }, () => [] as Array<MeshModel['proxies'][number] & { token: string }>);
    for (const p of model.proxies) shares[p.gid % w.size]?.push({ ...p, token: tokens.get(p.service) as string });
    const connectTimeoutMs = 30_000 + n * 20;
    log(`N=${n}: connecting ${n} proxies (${model.distinctViews} distinct views, ${model.endpoints} register an endpoint, ${model.rareCallers.length} call ${RARE_SERVICE})`);
    let peakMb = beforeMb;
    const sampler = setInterval(() => {
      try {
        peakMb = Math.max(peakMb, rssMb(control.pid));
      } catch {
        /* the process is gone; the connect fails below */
      }
    }, 250);
    const t0 = performance.now();
    let connects;
    try {
      connects = await Promise.all(
        shares.map((proxies, i) => w.one(i, { op: 'connect', url: control.url, proxies, concurrency: 32, timeoutMs: connectTimeoutMs }, connectTimeoutMs + 10_000)),
      );
    } finally {
      clearInterval(sampler);
    }
    result.connectS = (performance.now() - t0) / 1000;
    result.clientsOpen = sum(connects.map((c) => c.connected ?? 0));
    result.connectFailed = sum(connects.map((c) => c.failed ?? 0));
    result.connectErrors = connects.flatMap((c) => c.errors ?? []).slice(0, 5);
    log(`N=${n}: ${result.clientsOpen} connected in ${result.connectS.toFixed(2)} s (${result.connectFailed} failed)`);
    result.settleS = await waitQuiet(w, 1000, 120_000);
    result.connected = await cp.connectedProxies();

    const idleMb = rssMb(cp.pid);
    const idleCpu0 = cpuSeconds(cp.pid);
    const idleT0 = performance.now();
    await sleep(3000);
    result.idleCpuMsPerS = ((cpuSeconds(cp.pid) - idleCpu0) * 1000) / ((performance.now() - idleT0) / 1000);
    result.rss = { beforeMb, peakConnectMb: Math.max(peakMb, idleMb), idleMb, perProxyKb: ((idleMb - beforeMb) * 1024) / n, totalPerProxyKb: (idleMb * 1024) / n };
    if (result.clientsOpen === 0) throw new Error(`no proxy connected: ${result.connectErrors.join('; ')}`);

    const ctx: Context = { cp, workers: w, model };
    const runs: Record<'all' | 'rare', ChangeRun[]> = { all: [], rare: [] };
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const kind of ['all', 'rare'] as const) {
        const r = await runChange(ctx, kind, rep);
        runs[kind].push(r);
        log(
          `N=${n} ${kind} #${rep + 1}: ${r.acked}/${r.targets} ACKed, last ${r.lastAckMs?.toFixed(0) ?? '-'} ms, p50 ${r.p50Ms?.toFixed(0) ?? '-'} p99 ${r.p99Ms?.toFixed(0) ?? '-'} ms, ` +
            `cpu ${r.cpuS.toFixed(3)} s, ${r.bytesPerTarget?.toFixed(0) ?? '-'} B/target, ${r.otherReceivers} others received`,
        );
        await sleep(300);
      }
    }
    result.changes = {
      all: summarizeChange('MeshConfig spec.timeouts.idle changed: every view carries the MeshConfig', runs.all),
      rare: summarizeChange(`Service ${RARE_SERVICE} (external, static endpoint) changed its endpoint port: only its callers' views`, runs.rare),
    };
    result.rss.afterMb = rssMb(cp.pid);
    const status = (await w.all({ op: 'status' })) as StatusReply[];
    result.lostStreams = sum(status.map((s) => s.lost));
    result.lostReasons = status.flatMap((s) => s.lostReasons).slice(0, 5);
    result.status = 'ok';
  } finally {
    await workers?.stop();
    await cp?.stop();
    if (opts.keepTmp) log(`N=${n}: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  installCleanup();
  const started = Date.now();
  const date = new Date().toISOString();
  const loadStart = loadNow();
  const cpuCount = cpus().length;
  // The control plane alone on CPU 1; this runner and the client workers (which inherit its affinity) on CPU 0.
  const canPin = cpuCount >= 2 && pinSelf('0');
  const cpuControl = canPin ? '1' : null;
  const pinning = canPin
    ? 'taskset -c 1: mycel control; taskset -c 0: the runner and the client workers (the simulated proxies)'
    : `no pinning (${cpuCount} cpu${cpuCount === 1 ? '' : 's'} or no taskset): control plane and clients share the CPUs`;

  const largest = Math.max(...opts.sizes);
  const limit = ensureOpenFiles(descriptorsNeeded(largest, opts.workers));
  const results: SizeResult[] = [];
  // Whole-run watchdog: connect and settle bounds per size plus every change's 30 s bound, and some slack.
  const budgetMs = opts.sizes.reduce((t, n) => t + 30_000 + n * 20 + 120_000 + opts.reps * 2 * 32_000 + 60_000, 0);
  const watchdog = setTimeout(() => {
    console.error(`bench: the run exceeded its ${Math.round(budgetMs / 1000)} s budget; stopping`);
    process.kill(process.pid, 'SIGTERM');
  }, budgetMs);
  watchdog.unref();

  for (const n of opts.sizes) {
    const result: SizeResult = { n, status: 'failed' };
    results.push(result);
    const needed = descriptorsNeeded(n, opts.workers);
    if (limit !== null && limit.soft < needed) {
      result.status = 'skipped';
      result.reason = `needs about ${needed} open files per process, the limit is ${limit.soft} (hard ${limit.hard}); raise it with ulimit -n`;
      log(`N=${n}: ${result.reason}`);
      continue;
    }
    try {
      await runSize(n, opts, cpuControl, result);
    } catch (err) {
      result.reason = (err as Error).message.replace(/\s+/g, ' ').slice(0, 400);
      log(`N=${n}: failed: ${result.reason}`);
    }
  }
  clearTimeout(watchdog);

  const fl = openFileLimit();
  const report: ScaleReport = {
    date,
    machine: { ...machineInfo(loadStart), open_files: fl === null ? 'unknown' : `${fl.soft} (hard ${fl.hard})` },
    pinning,
    settings: { sizes: opts.sizes, reps: opts.reps, workers: opts.workers, lease: opts.lease, wall_time_s: Math.round((Date.now() - started) / 1000) },
    method: [
      'one `mycel control` process per size, file store in a fresh temp dir, default log level; proxies speak the real stream protocol (hello, ACK of every config version, heartbeats at the welcome interval), each over its own HTTP/2 connection',
      'mesh: 50 services, each proxy runs one of them and calls 2-4 others (Zipf popularity, seeded); ~10% register an endpoint; 0.5% (at least 2) also call the external service rare-ledger',
      'apply -> ACK: from the apply\'s HTTP response (runner) to the moment a simulated proxy wrote its ACK (wall clock shared by the processes); p50/p99 over the target proxies of one change, then the median over repetitions. The push starts right after the commit, so a small change can be ACKed before the runner has read the response (a negative time); "from request sent" adds the apply\'s own round trip',
      'CPU per change: utime+stime of the control plane (/proc/PID/stat, 10 ms ticks) from just before the apply to the last target ACK, heartbeats included',
      'RSS: VmRSS of the control plane; "added" per proxy is (idle connected - before any proxy) / N; bytes: stream DATA received per proxy in the change window (HTTP/2 framing not counted)',
      'rare change: the other proxies must receive nothing within the change window plus 500 ms',
    ],
    targets: TARGETS,
    sizes: results,
    verdicts: Object.fromEntries(results.map((s) => [String(s.n), verdicts(s)])),
  };
  console.log(formatTable(report));
  const file = join(repoRoot, 'bench', 'results', 'control-plane-latest.json');
  writeScaleReport(file, report);
  console.error(`bench: wrote ${file}`);
  process.exitCode = results.every((r) => r.status === 'ok') ? 0 : 1;
}

await main();
