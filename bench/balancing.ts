// Balancing and route-table benchmark of the Mycel path (client -> sidecar web -> mTLS -> sidecar(s) api -> app):
// (1) p50/p99 at a fixed rate with round robin vs peak EWMA when one of three endpoints answers late; (2) throughput
// and fixed-rate latency with a route table of one route vs 1,000. `npm run bench:balancing -- --help` for the flags.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts, type Certs } from './lib/certs.js';
import { parseFlags, positiveFlag } from './lib/cli-options.js';
import { h2loadFixedRate, preloadWorkers, workerSource, wrkThroughput, type LatencyResult } from './lib/loadgen.js';
import { pacedLoad } from './lib/paced-load.js';
import { loadNow, machineInfo } from './lib/machine.js';
import { freePorts, installCleanup, pinSelf, portAccepts, removeOnExit, repoRoot, spawnManaged, waitUntil, type Managed } from './lib/processes.js';
import { median, ratio } from './lib/stats.js';
import { ready } from './peers/mycel.js';
import { startUpstream } from './peers/upstream.js';

interface Options {
  only: string[];
  rounds: number;
  duration: number;
  rate: number;
  warmup: number;
  routeRate: number;
  slowMs: number;
  keepTmp: boolean;
}

const usage = `usage: npm run bench:balancing -- [options]   (or: node dist/bench/balancing.js after a build)
  --only ewma|routes   run one of the two scenarios (default both)
  --rounds N           rounds, the two variants interleaved in each (default 3)
  --duration S         seconds of each measured run (default 4)
  --rate N             requests per second of the balancing runs (default 400)
  --warmup S           seconds of load before each balancing run is measured (default 5)
  --route-rate N       requests per second of the route-table latency runs (default 1000)
  --slow-ms MS         delay the slow endpoint adds to each of its answers (default 20)
  --keep-tmp           keep the temporary directory (configs, certs, sidecar logs)`;

function parseOptions(argv: string[]): Options {
  const values = parseFlags(argv, {
    only: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    rate: { type: 'string' },
    warmup: { type: 'string' },
    'route-rate': { type: 'string' },
    'slow-ms': { type: 'string' },
    'keep-tmp': { type: 'boolean', default: false },
  }, usage);
  return {
    only: (values.only ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0),
    rounds: positiveFlag('rounds', values.rounds, 3, usage, true),
    duration: positiveFlag('duration', values.duration, 4, usage),
    rate: positiveFlag('rate', values.rate, 400, usage, true),
    warmup: positiveFlag('warmup', values.warmup, 5, usage),
    routeRate: positiveFlag('route-rate', values['route-rate'], 1000, usage, true),
    slowMs: positiveFlag('slow-ms', values['slow-ms'], 20, usage),
    keepTmp: values['keep-tmp'] ?? false,
  };
}

interface Env {
  dir: string;
  certs: Certs;
  cpuLoad: string | null;
  cpuProxy: string | null;
}

/** One resource document. */
const doc = (kind: string, name: string, spec: string): string => `---\napiVersion: mycel.dev/v1alpha1\nkind: ${kind}\nmetadata: { name: ${name} }\nspec: ${spec}\n`;

const MESH = doc('MeshConfig', 'mesh', '{ trustDomain: mycel.local }') + doc('Service', 'web', '{ ports: [ { port: 80, appProtocol: http } ] }');

function apiService(inboundPorts: number[]): string {
  const eps = inboundPorts.map((p) => `{ address: 127.0.0.1, port: ${p} }`).join(', ');
  return doc('Service', 'api', `{ ports: [ { port: 80, appProtocol: http } ], endpoints: [ ${eps} ] }`);
}

/** One sidecar from a config file, pinned with the other proxies; resolves once /ready answers. */
async function sidecar(env: Env, name: string, service: 'web' | 'api', appPort: number, config: string): Promise<{ proc: Managed; inbound: number; outbound: number }> {
  const [inbound, outbound, admin] = (await freePorts(3)) as [number, number, number];
  const leaf = env.certs.leaves[service];
  const args = [join(repoRoot, 'bin', 'mycel.js'), 'proxy', '--service', service, '--app-port', String(appPort), '--config', config,
    '--inbound', `127.0.0.1:${inbound}`, '--outbound', `127.0.0.1:${outbound}`, '--admin', `127.0.0.1:${admin}`,
    '--cert', leaf.cert, '--key', leaf.key, '--ca', env.certs.ca];
  const proc = spawnManaged(`sidecar ${name}`, process.execPath, args, { cpu: env.cpuProxy, cwd: repoRoot, logFile: join(env.dir, `${name}.log`) });
  await waitUntil(`sidecar ${name} /ready`, () => ready(admin), { timeoutMs: 30_000, intervalMs: 200, watch: [proc] });
  return { proc, inbound, outbound };
}

/** The three apps (one slow) in one process pinned with the load, from bench/workers/instance-apps.ts. */
async function startApps(env: Env, delays: number[]): Promise<{ ports: number[]; proc: Managed }> {
  const ports = await freePorts(delays.length);
  const proc = spawnManaged('instance apps', process.execPath, ['--input-type=module', '-'], {
    cpu: env.cpuLoad,
    env: { ...process.env, PORTS: ports.join(','), DELAYS_MS: delays.join(',') },
    stdin: workerSource('instance-apps'),
    logFile: join(env.dir, 'apps.log'),
  });
  for (const port of ports) await waitUntil(`app port ${port}`, () => portAccepts(port), { timeoutMs: 10_000, watch: [proc] });
  return { ports, proc };
}

interface VariantResult {
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  throughputRps?: number | null;
  slowShare?: number | null;
}

function summarize(runs: VariantResult[]): VariantResult {
  return {
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    ...(runs.some((r) => r.throughputRps !== undefined) ? { throughputRps: median(runs.map((r) => r.throughputRps)) } : {}),
    ...(runs.some((r) => r.slowShare !== undefined) ? { slowShare: median(runs.map((r) => r.slowShare)) } : {}),
  };
}

const ms = (v: number | null | undefined): string => (v == null ? '-' : v.toFixed(2));

function fixedRate(env: Env, port: number, path: string, rate: number, seconds: number): Promise<LatencyResult> {
  return h2loadFixedRate({ url: `http://127.0.0.1:${port}${path}`, authority: 'api' }, { h1: true, clients: 10, totalRps: rate, seconds, logFile: join(env.dir, 'h2load.log'), cpu: env.cpuLoad });
}

/** Round robin vs peak EWMA, three endpoints, one of them slow, at a fixed rate. */
async function balancingScenario(env: Env, o: Options): Promise<Record<string, unknown>> {
  const apps = await startApps(env, [0, 0, o.slowMs]);
  const apiConfig = join(env.dir, 'api.yaml');
  writeFileSync(apiConfig, MESH + apiService([]));
  const apis = await Promise.all(apps.ports.map((port, i) => sidecar(env, `api-${i}`, 'api', port, apiConfig)));
  const variants = { 'round-robin': 'RoundRobin', ewma: 'EWMA' } as const;
  const webs: Record<string, number> = {};
  for (const [variant, type] of Object.entries(variants)) {
    const config = join(env.dir, `web-${variant}.yaml`);
    writeFileSync(config, MESH + apiService(apis.map((a) => a.inbound)) + doc('TrafficPolicy', 'api', `{ targetRef: { kind: Service, name: api }, loadBalancer: { type: ${type} } }`));
    webs[variant] = (await sidecar(env, `web-${variant}`, 'web', 1, config)).outbound;
  }
  const runs: Record<string, VariantResult[]> = { 'round-robin': [], ewma: [] };
  for (let round = 1; round <= o.rounds; round++) {
    for (const [variant, port] of Object.entries(webs)) {
      const r = await pacedLoad(port, { authority: 'api', path: '/work', rate: o.rate, warmupS: o.warmup, seconds: o.duration });
      const slowShare = (r.byInstance['2'] ?? 0) / Math.max(1, r.ok);
      runs[variant]!.push({ p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: r.errors, slowShare });
      console.error(`[ewma ${round}/${o.rounds}] ${variant.padEnd(12)} p50 ${ms(r.p50Ms)} p99 ${ms(r.p99Ms)} ms  slow endpoint share ${(slowShare * 100).toFixed(1)}%  errors ${r.errors}`);
    }
  }
  await apps.proc.stop();
  const rr = summarize(runs['round-robin']!);
  const ewma = summarize(runs.ewma!);
  const cut = ratio(rr.p99Ms, ewma.p99Ms);
  console.log(`\nBalancing: 3 endpoints, one answers ${o.slowMs} ms late; ${o.rate} req/s open loop over keep-alive connections, ${o.warmup} s warm-up + ${o.duration} s measured, ${o.rounds} rounds, medians`);
  console.log('  balancer       p50 ms   p99 ms   slow endpoint share   errors');
  for (const [name, s] of [['round robin', rr], ['peak EWMA', ewma]] as const) {
    console.log(`  ${name.padEnd(12)} ${ms(s.p50Ms).padStart(8)} ${ms(s.p99Ms).padStart(8)}   ${(((s.slowShare ?? 0) * 100).toFixed(1) + '%').padStart(19)}   ${s.errors}`);
  }
  console.log(`  p99 round robin / EWMA: ${cut === null ? '-' : cut.toFixed(1) + 'x'} (target >= 3x: ${cut !== null && cut >= 3 ? 'met' : 'NOT met'})`);
  return { rate_rps: o.rate, slow_ms: o.slowMs, warmup_s: o.warmup, round_robin: rr, ewma, p99_cut: cut, target_met: cut !== null && cut >= 3 };
}

/** A route table of one catch-all route vs 1,000 routes whose 999 first candidates do not match (the worst case). */
function routes(count: number): string {
  const route = (name: string, prefix: string) =>
    doc('HTTPRoute', name, `{ parentRefs: [ { name: api } ], rules: [ { matches: [ { path: { type: PathPrefix, value: ${prefix} } } ], backendRefs: [ { name: api } ] } ] }`).replace('mycel.dev/v1alpha1', 'gateway.networking.k8s.io/v1');
  const docs: string[] = [];
  for (let i = 1; i < count; i++) docs.push(route(`r${i}`, `/p${String(i).padStart(4, '0')}`));
  docs.push(route('catch-all', '/'));
  return docs.join('');
}

async function routeTableScenario(env: Env, o: Options): Promise<Record<string, unknown>> {
  const upstream = await startUpstream(env.dir, env.cpuLoad);
  const apiConfig = join(env.dir, 'api-routes.yaml');
  writeFileSync(apiConfig, MESH + apiService([]));
  const api = await sidecar(env, 'api-routes', 'api', upstream.ports.http1, apiConfig);
  const webs: Record<string, number> = {};
  for (const count of [1, 1000]) {
    const config = join(env.dir, `web-${count}-routes.yaml`);
    writeFileSync(config, MESH + apiService([api.inbound]) + routes(count));
    webs[`${count}`] = (await sidecar(env, `web-${count}-routes`, 'web', 1, config)).outbound;
  }
  const runs: Record<string, VariantResult[]> = { '1': [], '1000': [] };
  const target = (port: number) => ({ url: `http://127.0.0.1:${port}/small`, authority: 'api' });
  for (const port of Object.values(webs)) await wrkThroughput(target(port), { connections: 64, seconds: 1, cpu: env.cpuLoad });
  for (let round = 1; round <= o.rounds; round++) {
    for (const [count, port] of Object.entries(webs)) {
      const thr = await wrkThroughput(target(port), { connections: 64, seconds: o.duration, cpu: env.cpuLoad });
      const lat = await fixedRate(env, port, '/small', o.routeRate, o.duration);
      runs[count]!.push({ p50Ms: lat.p50Ms, p99Ms: lat.p99Ms, errors: thr.errors + lat.errors, throughputRps: thr.rps });
      console.error(`[routes ${round}/${o.rounds}] ${count.padStart(4)} route(s)  ${thr.rps.toFixed(0)} req/s  p50 ${ms(lat.p50Ms)} p99 ${ms(lat.p99Ms)} ms  errors ${thr.errors + lat.errors}`);
    }
  }
  await upstream.stop();
  const one = summarize(runs['1']!);
  const thousand = summarize(runs['1000']!);
  const loss = one.throughputRps && thousand.throughputRps ? 1 - thousand.throughputRps / one.throughputRps : null;
  console.log(`\nRoute table: requests match the last of the candidates (999 PathPrefix routes that do not match, then "/"); wrk -c64 ${o.duration} s, and ${o.routeRate} req/s fixed rate; ${o.rounds} rounds, medians`);
  console.log('  routes   req/s    p50 ms   p99 ms   errors');
  for (const [name, s] of [['1', one], ['1000', thousand]] as const) {
    console.log(`  ${name.padStart(6)} ${(s.throughputRps ?? 0).toFixed(0).padStart(7)} ${ms(s.p50Ms).padStart(8)} ${ms(s.p99Ms).padStart(8)}   ${s.errors}`);
  }
  console.log(`  throughput lost with 1,000 routes: ${loss === null ? '-' : (loss * 100).toFixed(1) + '%'} (target < 5%: ${loss !== null && loss < 0.05 ? 'met' : 'NOT met'})`);
  return { fixed_rate_rps: o.routeRate, one_route: one, thousand_routes: thousand, throughput_loss: loss, target_met: loss !== null && loss < 0.05 };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  installCleanup();
  const canPin = cpus().length >= 2 && pinSelf('0');
  const dir = mkdtempSync(join(tmpdir(), 'mycel-bench-balancing-'));
  if (o.keepTmp) console.error(`bench: keeping ${dir}`);
  else removeOnExit(dir);
  mkdirSync(join(dir, 'certs'));
  preloadWorkers(['node-worker', 'instance-apps']);
  const env: Env = { dir, certs: await makeCerts(join(dir, 'certs')), cpuLoad: canPin ? '0' : null, cpuProxy: canPin ? '1' : null };
  const loadAtStart = loadNow();
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    pinning: canPin ? 'load generator, apps and runner on CPU 0; every sidecar on CPU 1' : 'no pinning',
    settings: { rounds: o.rounds, duration_s: o.duration },
  };
  const want = (s: string) => o.only.length === 0 || o.only.includes(s);
  if (want('ewma')) report.balancing = await balancingScenario(env, o);
  if (want('routes')) report.route_table = await routeTableScenario(env, o);
  report.machine = machineInfo(loadAtStart);
  const out = join(repoRoot, 'bench', 'results', 'balancing-latest.json');
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  console.error(`bench: wrote ${out}`);
  process.exit(0);
}

void main();
