// Load generators: wrk (HTTP/1.1 saturation), h2load (h2c and gRPC saturation, fixed-rate runs with per-request
// logs, also with --h1) and the Node workers for gRPC and TCP; parsers for their outputs (pure, see loadgen.test.ts).
import { readFileSync, rmSync } from 'node:fs';
import { runBounded, type RunResult } from './processes.js';
import { percentileSorted } from './stats.js';

// ---- results ----

export interface ThroughputResult {
  /** Completed requests (or messages) per second. */
  rps: number;
  requests: number;
  /** Failed requests: socket errors, non-2xx/3xx statuses, gRPC errors. */
  errors: number;
  seconds: number;
  /** TCP only: payload MiB per second as counted by the receiver. */
  mbPerS?: number;
  /** TCP only: payload bytes moved during the measured window. */
  bytes?: number;
  /** h2load only: requests started but neither answered nor failed when the run ended. */
  unfinished?: number;
}

export interface LatencyResult {
  /** Successful requests whose latency was recorded. */
  ok: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
  seconds: number;
}

// ---- wrk ----

export interface WrkSummary {
  requests: number;
  seconds: number;
  rps: number;
  non2xx3xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

const timeUnits: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** Parses wrk's text summary ("N requests in 5.00s", "Requests/sec:", "Socket errors:", "Non-2xx or 3xx"). */
export function parseWrk(text: string): WrkSummary {
  const reqs = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!reqs || !rps) throw new Error(`unrecognised wrk output: ${text.trim().split('\n').slice(-3).join(' | ')}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(reqs[1]),
    seconds: Number(reqs[2]) * (timeUnits[reqs[3] as string] ?? 1),
    rps: Number(rps[1]),
    non2xx3xx: non ? Number(non[1]) : 0,
    socketErrors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
    },
  };
}

// ---- h2load ----

export interface H2loadSummary {
  seconds: number;
  rps: number;
  total: number;
  started: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
}

/** Parses h2load's summary ("finished in ...", "requests: ...", "status codes: ..."). */
export function parseH2load(text: string): H2loadSummary {
  const fin = /finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req\/s/.exec(text);
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const st = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  if (!fin || !req) throw new Error(`unrecognised h2load output: ${text.trim().split('\n').slice(-3).join(' | ')}`);
  const n = (m: RegExpExecArray | null, i: number): number => (m ? Number(m[i]) : 0);
  return {
    seconds: Number(fin[1]) * (timeUnits[fin[2] as string] ?? 1),
    rps: Number(fin[3]),
    total: n(req, 1),
    started: n(req, 2),
    done: n(req, 3),
    succeeded: n(req, 4),
    failed: n(req, 5),
    errored: n(req, 6),
    timeout: n(req, 7),
    status: { '2xx': n(st, 1), '3xx': n(st, 2), '4xx': n(st, 3), '5xx': n(st, 4) },
  };
}

export interface H2loadLog {
  /** Durations of 2xx/3xx requests in milliseconds, ascending. */
  okDurationsMs: number[];
  /** Requests logged with another status (h2load logs -1 for requests that failed without a response). */
  failed: number;
}

/** Parses an h2load --log-file: one line per request, `<start µs since epoch>\t<status>\t<duration µs>`. */
export function parseH2loadLog(text: string): H2loadLog {
  const okDurationsMs: number[] = [];
  let failed = 0;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const parts = line.split('\t');
    if (parts.length < 3) continue;
    const status = Number(parts[1]);
    const micros = Number(parts[2]);
    if (!Number.isFinite(status) || !Number.isFinite(micros)) continue;
    if (status >= 200 && status < 400) okDurationsMs.push(micros / 1000);
    else failed++;
  }
  okDurationsMs.sort((a, b) => a - b);
  return { okDurationsMs, failed };
}

/** Percentiles of ascending latencies, null when there are none. */
export function latencySummary(sortedMs: readonly number[]): { p50Ms: number | null; p99Ms: number | null } {
  return { p50Ms: percentileSorted(sortedMs, 50) ?? null, p99Ms: percentileSorted(sortedMs, 99) ?? null };
}

// ---- running them ----

export interface HttpTarget {
  /** e.g. http://127.0.0.1:8080/small */
  url: string;
  /** Host / :authority to send (the mesh routes HTTP/1.1 by Host). */
  authority: string;
}

function failure(tool: string, r: RunResult): Error {
  const why = r.timedOut ? 'timed out' : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' | ');
  return new Error(`${tool} ${why}${tail ? `: ${tail}` : ''}`);
}

/** wrk with one thread; wrk takes whole seconds only. */
export async function wrkThroughput(
  target: HttpTarget,
  opts: { connections: number; seconds: number; luaScript?: string; cpu: string | null; prefix?: readonly string[] },
): Promise<ThroughputResult> {
  const secs = Math.max(1, Math.round(opts.seconds));
  const args = ['-t1', `-c${opts.connections}`, `-d${secs}s`, '--timeout', '5s', '-H', `Host: ${target.authority}`];
  if (opts.luaScript) args.push('-s', opts.luaScript);
  args.push(target.url);
  // `prefix` runs wrk through a wrapper that execs it in place (e.g. `ip netns exec NS` for another host).
  const argv = [...(opts.prefix ?? []), 'wrk', ...args];
  const r = await runBounded(argv[0]!, argv.slice(1), { cpu: opts.cpu, timeoutMs: (secs + 15) * 1000 });
  if (r.code !== 0) throw failure('wrk', r);
  const s = parseWrk(r.stdout);
  const errors = s.non2xx3xx + s.socketErrors.connect + s.socketErrors.read + s.socketErrors.write + s.socketErrors.timeout;
  return { rps: s.rps, requests: s.requests, errors, seconds: s.seconds };
}

interface H2loadRequest {
  /** HTTP/1.1 instead of h2c. */
  h1: boolean;
  /** POST this file's content as the request body. */
  dataFile?: string;
  /** Extra request headers, "name: value". */
  headers?: readonly string[];
}

function h2loadBaseArgs(target: HttpTarget, req: H2loadRequest): string[] {
  const args = ['-t1', '-H', `:authority: ${target.authority}`];
  for (const h of req.headers ?? []) args.push('-H', h);
  if (req.h1) args.push('--h1');
  if (req.dataFile) args.push('-d', req.dataFile);
  return args;
}

/** h2load saturation: `clients` connections with `streams` concurrent streams each, for a fixed duration. */
export async function h2loadThroughput(
  target: HttpTarget,
  opts: H2loadRequest & { clients: number; streams: number; seconds: number; cpu: string | null },
): Promise<ThroughputResult> {
  const args = [
    ...h2loadBaseArgs(target, opts),
    '-c', String(opts.clients), '-m', String(opts.streams), '-D', `${Math.round(opts.seconds * 1000)}ms`,
    target.url,
  ];
  const r = await runBounded('h2load', args, { cpu: opts.cpu, timeoutMs: opts.seconds * 1000 + 15_000 });
  if (r.code !== 0) throw failure('h2load', r);
  const s = parseH2load(r.stdout);
  // "status codes" can count a few more responses than "done" (streams closed after the deadline): use h2load's
  // own succeeded / failed counts.
  return {
    rps: s.succeeded / Math.max(s.seconds, 1e-6),
    requests: s.succeeded,
    errors: s.failed,
    seconds: s.seconds,
    unfinished: s.started - s.done,
  };
}

/**
 * h2load at a fixed total rate, one connection per h2load process, each paced at totalRps/clients with -m1 and
 * started 1/totalRps apart. (A single `h2load -cN --rps R` fires all N clients' timers together, so requests
 * arrive in bursts of N, which measures queueing behind the burst more than the cost of a request.) Latencies
 * come from the merged --log-file records of successful requests.
 */
export async function h2loadFixedRate(
  target: HttpTarget,
  opts: H2loadRequest & { clients: number; totalRps: number; seconds: number; logFile: string; cpu: string | null },
): Promise<LatencyResult> {
  const perClient = Math.max(1, Math.round(opts.totalRps / opts.clients));
  const gapMs = 1000 / (perClient * opts.clients);
  const runs: Promise<RunResult>[] = [];
  const logs = Array.from({ length: opts.clients }, (_, i) => `${opts.logFile}.${i}`);
  const t0 = performance.now();
  try {
    for (let i = 0; i < opts.clients; i++) {
      const due = t0 + i * gapMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      const log = logs[i] as string;
      rmSync(log, { force: true }); // h2load appends to an existing log file
      const args = [
        ...h2loadBaseArgs(target, opts),
        '-c', '1', '-m', '1', '--rps', String(perClient),
        '-D', `${Math.round(opts.seconds * 1000)}ms`, `--log-file=${log}`,
        target.url,
      ];
      runs.push(runBounded('h2load', args, { cpu: opts.cpu, timeoutMs: opts.seconds * 1000 + 15_000 }));
    }
    const results = await Promise.all(runs);
    let errors = 0;
    let seconds = 0;
    const durations: number[] = [];
    for (const [i, r] of results.entries()) {
      if (r.code !== 0) throw failure('h2load', r);
      const s = parseH2load(r.stdout);
      const log = parseH2loadLog(readFileSync(logs[i] as string, 'utf8'));
      errors += Math.max(s.failed, log.failed);
      seconds = Math.max(seconds, s.seconds);
      for (const d of log.okDurationsMs) durations.push(d);
    }
    durations.sort((a, b) => a - b);
    return { ok: durations.length, errors, ...latencySummary(durations), seconds };
  } finally {
    await Promise.allSettled(runs);
    for (const log of logs) rmSync(log, { force: true });
  }
}

// ---- Node workers (gRPC, TCP) ----

const workerSources = new Map<string, string>();

/**
 * Reads the compiled worker scripts once, at start-up: they are fed to `node -` on stdin later, so a rebuild of
 * dist/ by someone else during a long run cannot pull them away. They import only builtins and node_modules
 * packages, which resolve from the repository root (the children's cwd).
 */
export function preloadWorkers(names: readonly string[]): void {
  for (const name of names) {
    workerSources.set(name, readFileSync(new URL(`../workers/${name}.js`, import.meta.url), 'utf8'));
  }
}

export function workerSource(name: string): string {
  const src = workerSources.get(name);
  if (src === undefined) throw new Error(`worker ${name} was not preloaded`);
  return src;
}

/** Runs a worker to completion and parses the JSON object it prints as its last stdout line. */
export async function runWorker<T>(
  name: string,
  env: Record<string, string>,
  opts: { cpu: string | null; timeoutMs: number },
): Promise<T> {
  const r = await runBounded(process.execPath, ['--input-type=module', '-'], {
    cpu: opts.cpu,
    timeoutMs: opts.timeoutMs,
    env: { ...process.env, ...env },
    stdin: workerSource(name),
  });
  if (r.code !== 0) throw failure(`worker ${name}`, r);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`worker ${name}: no result line in its output: ${last.slice(0, 200)}`);
  }
}

/** What the load workers print (see bench/workers/). */
export interface WorkerThroughput {
  ok: number;
  errors: number;
  seconds: number;
  bytes?: number;
  firstError?: string;
}

export interface WorkerLatency {
  ok: number;
  errors: number;
  seconds: number;
  latenciesUs: number[];
  firstError?: string;
}

export function workerLatencyResult(w: WorkerLatency): LatencyResult {
  const sorted = w.latenciesUs.map((us) => us / 1000).sort((a, b) => a - b);
  return { ok: w.ok, errors: w.errors, ...latencySummary(sorted), seconds: w.seconds };
}
