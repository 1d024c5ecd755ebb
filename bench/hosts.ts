// Multi-host benchmark: the two-hop mesh path across network namespaces joined by veth (a client on host `web`, the
// app on host `api`), three rows: direct (no proxy), mycel explicit (the client calls web's sidecar binding), and
// mycel transparent (the client calls http://api:8080/ and iptables sends it through both sidecars). Prints a table
// and writes bench/results/hosts-latest.json with ratios against direct and transparent against explicit.
// Needs root, iproute2 and iptables (and the SO_ORIGINAL_DST addon for the transparent row).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../src/security/dev-ca.js';
import { originalDstUnavailable } from '../src/proxy/transparent/original-dst.js';
import { meshYaml } from '../test/hosts/mesh-hosts.js';
import { createHostBed, type Host, type HostBed } from '../test/hosts/netns-bed.js';
import { parseFlags, positiveFlag } from './lib/cli-options.js';
import { wrkThroughput } from './lib/loadgen.js';
import { loadNow, machineInfo } from './lib/machine.js';
import type { PacedResult } from './lib/paced-load.js';
import { installCleanup, pinSelf, removeOnExit, repoRoot, runBounded, sampleTree, spawnManaged, stopAll, waitUntil, type Managed } from './lib/processes.js';
import { median, ratio, round } from './lib/stats.js';

const usage = `usage: npm run bench:hosts -- [options]   (or: node dist/bench/hosts.js after a build; needs root)
  --rounds N       rounds, the rows in turn in each (default 3)
  --duration S     seconds of each saturated run (default 3)
  --rate N         requests per second of the fixed-rate latency runs (default 500)
  --warmup S       seconds of load before each measured run (default 1)
  --keep-tmp       keep the temporary directory (configs, certs, sidecar logs)`;

const APP_PORT = 8080;
const BINDING = 9191;
const ADMIN = 15000;
type Row = 'direct' | 'mycel-explicit' | 'mycel-transparent';

interface Options {
  rounds: number;
  duration: number;
  rate: number;
  warmup: number;
  keepTmp: boolean;
}

interface RoundResult {
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  /** utime+stime of both sidecars per 1000 requests of the fixed-rate run; null for direct. */
  cpuPer1k: number | null;
}

interface Env {
  dir: string;
  bed: HostBed;
  web: Host;
  api: Host;
  cpuLoad: string | null;
  cpuProxy: string | null;
}

const APP = `require('node:http').createServer((req, res) => { req.resume(); req.on('end', () => res.end('hello from api\\n')); }).listen(${APP_PORT}, '0.0.0.0', () => console.log('ready'));`;

async function sidecar(env: Env, h: Host, service: string, transparent: boolean, extra: string[]): Promise<Managed> {
  const args = [...h.prefix.slice(1), process.execPath, join(repoRoot, 'bin', 'mycel.js'), 'proxy', '--service', service, '--app-port', String(APP_PORT),
    '--config', join(env.dir, 'mesh.yaml'), '--inbound', '0.0.0.0:15006', '--outbound', '127.0.0.1:15001', '--admin', `0.0.0.0:${ADMIN}`,
    '--cert', join(env.dir, `${service}.crt`), '--key', join(env.dir, `${service}.key`), '--ca', join(env.dir, 'ca.crt'),
    // The admin port stays reachable from the runner (else the inbound redirect sends it to the mTLS listener).
    ...(transparent ? ['--transparent', '--exclude-inbound-ports', String(ADMIN)] : []), ...extra];
  const proc = spawnManaged(`sidecar ${service}`, h.prefix[0]!, args, { cpu: env.cpuProxy, cwd: repoRoot, logFile: join(env.dir, `${service}-${transparent ? 't' : 'e'}.log`) });
  env.bed.track(proc.pid);
  await waitUntil(`sidecar ${service} /ready`, async () => {
    try {
      return (await fetch(`http://${h.address}:${ADMIN}/ready`, { signal: AbortSignal.timeout(1000) })).status === 200;
    } catch {
      return false;
    }
  }, { timeoutMs: 30_000, intervalMs: 200, watch: [proc] });
  return proc;
}

/** Where the client on host web sends for a row: the app itself, web's binding, or the app's name (intercepted). */
function target(env: Env, row: Row): { host: string; port: number; url: string } {
  if (row === 'mycel-explicit') return { host: '127.0.0.1', port: BINDING, url: `http://127.0.0.1:${BINDING}/` };
  return { host: row === 'direct' ? env.api.address : 'api', port: APP_PORT, url: `http://${row === 'direct' ? env.api.address : 'api'}:${APP_PORT}/` };
}

async function paced(env: Env, row: Row, o: Options): Promise<PacedResult> {
  const t = target(env, row);
  const spec = JSON.stringify({ port: t.port, host: t.host, authority: 'api', path: '/', rate: o.rate, warmupS: o.warmup, seconds: o.duration });
  const r = await runBounded(env.web.prefix[0]!, [...env.web.prefix.slice(1), process.execPath, join(repoRoot, 'dist', 'bench', 'workers', 'paced-client.js'), spec], { cpu: env.cpuLoad, timeoutMs: (o.warmup + o.duration) * 1000 + 30_000 });
  if (r.code !== 0) throw new Error(`paced client failed (${r.code}): ${r.stderr.trim().slice(-300)}`);
  return JSON.parse(r.stdout) as PacedResult;
}

async function measure(env: Env, row: Row, o: Options, proxies: Managed[]): Promise<RoundResult> {
  const t = target(env, row);
  const thr = await wrkThroughput({ url: t.url, authority: 'api' }, { connections: 32, seconds: o.duration, cpu: env.cpuLoad, prefix: env.web.prefix });
  const before = sampleTree(proxies.map((p) => p.pid)).cpuSeconds;
  const lat = await paced(env, row, o);
  const cpu = sampleTree(proxies.map((p) => p.pid)).cpuSeconds - before;
  // The CPU sample spans the paced run's warm-up too: divide by every request it sent.
  const sent = Math.round(o.rate * (o.warmup + o.duration));
  return { rps: thr.rps, p50Ms: lat.p50Ms, p99Ms: lat.p99Ms, errors: thr.errors + lat.errors, cpuPer1k: proxies.length === 0 ? null : (cpu / sent) * 1000 };
}

async function runRow(env: Env, row: Row, o: Options): Promise<RoundResult> {
  const proxies: Managed[] = [];
  try {
    if (row !== 'direct') {
      const transparent = row === 'mycel-transparent';
      proxies.push(await sidecar(env, env.api, 'api', transparent, []));
      proxies.push(await sidecar(env, env.web, 'web', transparent, transparent ? [] : ['--upstream', `api=127.0.0.1:${BINDING}`]));
    }
    return await measure(env, row, o, proxies);
  } finally {
    // SIGTERM first, so that transparent sidecars take their rules out before the next row.
    for (const p of proxies) await p.stop();
  }
}

function summarize(runs: RoundResult[]): RoundResult {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    cpuPer1k: median(runs.map((r) => r.cpuPer1k)),
  };
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
  if (!o.keepTmp) removeOnExit(dir);
  const cleanups: Array<() => unknown> = [];
  const bed = await createHostBed({ after: (fn) => cleanups.push(fn) }, [{ name: 'web' }, { name: 'api' }], { reachFromTest: true });
  const canPin = cpus().length >= 2 && pinSelf('0');
  const env: Env = { dir, bed, web: bed.host('web'), api: bed.host('api'), cpuLoad: canPin ? '0' : null, cpuProxy: canPin ? '1' : null };
  const results: Partial<Record<Row, RoundResult>> = {};
  const notes: string[] = [];
  try {
    await writeDevCertificates(dir, { services: ['web', 'api'] });
    // The chaos tests' mesh without their TrafficPolicy: plain two-hop path, HTTP/1.1 between the sidecars.
    writeFileSync(join(dir, 'mesh.yaml'), meshYaml({ web: env.web, apiHosts: [env.api], resilience: false }));
    const app = spawnManaged('app', env.api.prefix[0]!, [...env.api.prefix.slice(1), process.execPath, '-e', APP], { cpu: env.cpuLoad, logFile: join(dir, 'app.log') });
    bed.track(app.pid);
    await waitUntil('app on api', async () => (await env.api.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${APP_PORT}/`])).stdout === '200', { timeoutMs: 15_000, intervalMs: 200, watch: [app] });
    const rows: Row[] = ['direct', 'mycel-explicit'];
    const missing = originalDstUnavailable();
    if (missing === null) rows.push('mycel-transparent');
    else notes.push(`mycel-transparent skipped: ${missing.message}`);
    const runs = new Map<Row, RoundResult[]>(rows.map((r) => [r, []]));
    for (let round = 0; round < o.rounds; round++) {
      for (const row of rows) {
        process.stderr.write(`round ${round + 1}/${o.rounds}: ${row}\n`);
        runs.get(row)!.push(await runRow(env, row, o));
      }
    }
    for (const row of rows) results[row] = summarize(runs.get(row)!);
  } finally {
    await stopAll();
    for (const fn of cleanups) await fn();
  }
  report(results, o, loadStart, notes);
}

function report(results: Partial<Record<Row, RoundResult>>, o: Options, loadStart: number, notes: string[]): void {
  const direct = results.direct;
  const explicit = results['mycel-explicit'];
  const fmt = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '-' : String(round(v, d)));
  const lines = [`| row | req/s | kept vs direct | p50 ms | p99 ms | +p50 ms | +p99 ms | cpu s / 1k req | errors |`, `|---|---|---|---|---|---|---|---|---|`];
  const rows: Record<string, unknown> = {};
  for (const [row, r] of Object.entries(results) as Array<[Row, RoundResult]>) {
    const added = { p50Ms: direct && r.p50Ms !== null && direct.p50Ms !== null ? r.p50Ms - direct.p50Ms : null, p99Ms: direct && r.p99Ms !== null && direct.p99Ms !== null ? r.p99Ms - direct.p99Ms : null };
    const kept = ratio(r.rps, direct?.rps);
    rows[row] = { ...r, throughputKept: round(kept, 3), addedP50Ms: round(added.p50Ms, 3), addedP99Ms: round(added.p99Ms, 3) };
    lines.push(`| ${row} | ${fmt(r.rps, 0)} | ${fmt(kept, 3)} | ${fmt(r.p50Ms, 3)} | ${fmt(r.p99Ms, 3)} | ${fmt(added.p50Ms, 3)} | ${fmt(added.p99Ms, 3)} | ${fmt(r.cpuPer1k, 4)} | ${r.errors} |`);
  }
  const transparent = results['mycel-transparent'];
  const interception = transparent && explicit ? {
    throughputRatio: round(ratio(transparent.rps, explicit.rps), 3),
    addedP50Ms: round(transparent.p50Ms !== null && explicit.p50Ms !== null ? transparent.p50Ms - explicit.p50Ms : null, 3),
    addedP99Ms: round(transparent.p99Ms !== null && explicit.p99Ms !== null ? transparent.p99Ms - explicit.p99Ms : null, 3),
    cpuRatio: round(ratio(transparent.cpuPer1k, explicit.cpuPer1k), 3),
  } : null;
  process.stdout.write(`${lines.join('\n')}\n`);
  if (interception) process.stdout.write(`transparent vs explicit: throughput x${interception.throughputRatio}, p50 ${interception.addedP50Ms} ms, p99 ${interception.addedP99Ms} ms, cpu per request x${interception.cpuRatio}\n`);
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  const out = { date: new Date().toISOString(), options: o, machine: machineInfo(loadStart), rows, transparentVsExplicit: interception, notes };
  mkdirSync(join(repoRoot, 'bench', 'results'), { recursive: true });
  writeFileSync(join(repoRoot, 'bench', 'results', 'hosts-latest.json'), JSON.stringify(out, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:hosts failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
