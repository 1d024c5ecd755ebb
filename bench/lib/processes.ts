// Child processes of the benchmark: spawn pinned (taskset), run bounded commands, stop by PID, clean up on exit,
// and sample CPU ticks and RSS of a process tree from /proc. Every child runs in its own process group so that
// stopping it (by its PID, as a group) also stops what it forked, e.g. nginx workers.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

/** The repository root, found from this compiled file (dist/bench/lib/processes.js) or, failing that, the cwd. */
export const repoRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    dir = resolve(dir, '..');
  }
  return process.cwd();
})();

export interface SpawnOptions {
  /** CPU list for `taskset -c`, or null for no pinning. */
  cpu: string | null;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr go to this file (long-running peers); otherwise they are captured in memory. */
  logFile?: string;
  /** Written to the child's stdin, which is then closed. */
  stdin?: string;
}

export interface Managed {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  exitDescription(): string;
  /** Last non-empty lines of the child's output (log file or captured stderr). */
  outputTail(lines?: number): string;
  /** The most telling recent output line (an error or alert line if any, else the last line). */
  failureReason(): string;
  /** SIGTERM to the group, SIGKILL after graceMs; resolves when the child has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Managed>();
const cleanupPaths = new Set<string>();
/** Set once the runner is stopping: no new children from then on. */
let shuttingDown = false;

function refuseWhenStopping(what: string): void {
  if (shuttingDown) throw new Error(`not starting ${what}: the benchmark is stopping`);
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** The last `bytes` bytes of a file as text ('' when unreadable). */
function readTail(path: string, bytes: number): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function withPin(cpu: string | null, cmd: string, args: readonly string[]): [string, string[]] {
  return cpu === null ? [cmd, [...args]] : ['taskset', ['-c', cpu, cmd, ...args]];
}

/** Starts a long-running child in its own process group, pinned if asked, and registers it for cleanup. */
export function spawnManaged(name: string, cmd: string, args: readonly string[], opts: SpawnOptions): Managed {
  refuseWhenStopping(name);
  const [file, argv] = withPin(opts.cpu, cmd, args);
  const fd = opts.logFile ? openSync(opts.logFile, 'a') : undefined;
  const child = spawn(file, argv, {
    cwd: opts.cwd ?? repoRoot,
    env: opts.env ?? process.env,
    detached: true,
    stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', fd ?? 'pipe', fd ?? 'pipe'],
  });
  if (fd !== undefined) closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  let captured = '';
  const keep = (chunk: Buffer): void => {
    captured += chunk.toString('utf8');
    if (captured.length > 64 * 1024) captured = captured.slice(-32 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(managed);
      res(exitInfo);
    });
    child.on('error', () => {
      exitInfo ??= { code: -1, signal: null };
      live.delete(managed);
      res(exitInfo);
    });
  });
  const pid = child.pid;
  const managed: Managed = {
    name,
    pid,
    child,
    exited,
    hasExited: () => exitInfo !== null,
    exitDescription: () =>
      exitInfo === null ? 'running' : exitInfo.signal ? `killed by ${exitInfo.signal}` : `exited with code ${exitInfo.code}`,
    outputTail: (lines = 3) => {
      let text = captured;
      if (opts.logFile) text = readTail(opts.logFile, 64 * 1024);
      return text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.length > 0)
        .slice(-lines)
        .join(' | ');
    },
    failureReason: () => pickFailureLine(managed.outputTail(40).split(' | ')),
    stop: async (graceMs = 3000) => {
      if (exitInfo !== null) return;
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Whatever the leader left behind in its group (e.g. nginx workers after a crash of the master).
      killGroup(pid, 'SIGKILL');
    },
  };
  live.add(managed);
  return managed;
}

/** From a process's last output lines, the one that most likely says why it failed. */
export function pickFailureLine(lines: readonly string[]): string {
  // Node's own headline of an uncaught error ("TypeError: ...", "Error [ERR_X]: ...") first.
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    if (/^(\w*Error|Error \[\w+\])(:|$)/.test(line)) return line.slice(0, 300);
  }
  const telling = /\b\w*Error\b|\berror\b|\bERR_|\[emerg\]|\[ALERT\]|\bFATAL\b|\bfatal\b/;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    if (telling.test(line) && !/^\s*at /.test(line)) return line.slice(0, 300);
  }
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion with a hard time limit (the whole process group is killed when it expires). */
export async function runBounded(
  cmd: string,
  args: readonly string[],
  opts: { cpu: string | null; timeoutMs: number; cwd?: string; env?: NodeJS.ProcessEnv; stdin?: string },
): Promise<RunResult> {
  refuseWhenStopping(cmd);
  const [file, argv] = withPin(opts.cpu, cmd, args);
  const child = spawn(file, argv, {
    cwd: opts.cwd ?? repoRoot,
    env: opts.env ?? process.env,
    detached: true,
    stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  let timedOut = false;
  const pid = child.pid;
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on('close', (c, s) => res({ code: c, signal: s }));
    child.on('error', (e) => {
      err.push(Buffer.from(String(e)));
      res({ code: -1, signal: null });
    });
  });
  const handle: Managed | null =
    pid === undefined
      ? null
      : {
          name: cmd,
          pid,
          child,
          exited: closed,
          hasExited: () => child.exitCode !== null || child.signalCode !== null,
          exitDescription: () => 'running',
          outputTail: () => '',
          failureReason: () => '',
          stop: async () => {
            killGroup(pid, 'SIGKILL');
            // Reap it before we go, so that no zombie is left to init.
            await Promise.race([closed, sleep(1000)]);
          },
        };
  if (handle) live.add(handle);
  const timer = setTimeout(() => {
    timedOut = true;
    if (pid !== undefined) killGroup(pid, 'SIGKILL');
  }, opts.timeoutMs);
  const { code, signal } = await closed;
  clearTimeout(timer);
  if (handle) live.delete(handle);
  return { code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut };
}

/** Stops every child still running (SIGTERM, then SIGKILL), in parallel. */
export async function stopAll(graceMs = 2000): Promise<void> {
  await Promise.all([...live].map((m) => m.stop(graceMs)));
}

/** Runs a benchmark's main: every child stopped at the end; on a failure, its message and exit code 1. */
export function runMain(main: () => Promise<void>): void {
  main()
    .then(() => stopAll())
    .catch(async (e: unknown) => {
      console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
      await stopAll();
      process.exitCode = 1;
    });
}

/** Removed (recursively) when the runner exits, however it exits. */
export function removeOnExit(path: string): void {
  cleanupPaths.add(path);
}

/** Installs exit, SIGINT, SIGTERM and fatal-error handlers that stop every child this process started. */
export function installCleanup(): void {
  const syncKillAll = (): void => {
    for (const m of live) killGroup(m.pid, 'SIGKILL');
    live.clear();
    for (const p of cleanupPaths) rmSync(p, { recursive: true, force: true });
    cleanupPaths.clear();
  };
  process.on('exit', syncKillAll);
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    shuttingDown = true;
    console.error(`\nbench: ${signal}, stopping ${live.size} child process(es)`);
    stopAll(1000).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const onFatal = (e: unknown): void => {
    shuttingDown = true;
    console.error('bench: fatal:', e);
    stopAll(1000).finally(() => process.exit(1));
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
}

/** Pins the calling process (all its threads) to a CPU list; returns false when taskset is unavailable. */
export function pinSelf(cpu: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpu, String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Distinct free loopback TCP ports (bound together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.listen(0, '127.0.0.1', () => res());
      });
      const addr = s.address();
      if (addr === null || typeof addr === 'string') throw new Error('unexpected server address');
      ports.push(addr.port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }
  return ports;
}

export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** True once host:port (default 127.0.0.1) accepts a TCP connection. */
export function portAccepts(port: number, timeoutMs = 500, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => {
      s.destroy();
      res(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Polls `check` until it returns true. Fails with the reason when the time runs out or when one of the watched
 * processes exits first (with its last output lines, which usually say why).
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; watch?: readonly Managed[] },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    for (const m of opts.watch ?? []) {
      if (m.hasExited()) {
        const why = m.failureReason();
        throw new Error(`${m.name} ${m.exitDescription()}${why ? `: ${why}` : ''}`);
      }
    }
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${opts.timeoutMs} ms`);
    await sleep(opts.intervalMs ?? 100);
  }
}

// ---- /proc sampling ----

export const clockTicksPerSecond: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  ppid: number;
  ticks: number;
}

/** Parses /proc/<pid>/stat text: the command may hold spaces and parentheses, so fields start after the last ')'. */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state): field n sits at index n - 3; ppid = 4, utime = 14, stime = 15.
  const ppid = Number(f[1]);
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  if (!Number.isFinite(ppid) || !Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return { ppid, ticks: utime + stime };
}

function readStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** The given PIDs and all their live descendants. */
export function processTree(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const st = readStat(pid);
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(pid);
    else children.set(st.ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [...roots];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

export interface TreeSample {
  /** utime + stime of every process in the tree, in seconds. */
  cpuSeconds: number;
  /** Sum of VmRSS over the tree, in MiB (the benchmark's "MB" is 2^20 bytes throughout). */
  rssMb: number;
}

function readRssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds and RSS of the process trees rooted at `roots`. */
export function sampleTree(roots: readonly number[]): TreeSample {
  return sampleProcesses(processTree(roots));
}

/**
 * CPU seconds and RSS of exactly these processes (a tree listed once with processTree): no scan of /proc, so it is
 * cheap enough to call in the middle of a paced load.
 */
export function sampleProcesses(pids: readonly number[]): TreeSample {
  let ticks = 0;
  let rssKb = 0;
  for (const pid of pids) {
    ticks += readStat(pid)?.ticks ?? 0;
    rssKb += readRssKb(pid);
  }
  return { cpuSeconds: ticks / clockTicksPerSecond, rssMb: rssKb / 1024 };
}

/** Runs `work` while sampling the summed RSS of the trees at `roots` every 250 ms; the peak (null without roots). */
export async function peakRssDuring<T>(roots: readonly number[], work: () => Promise<T>): Promise<{ value: T; peakMb: number | null }> {
  let peakMb: number | null = null;
  const sample = (): void => {
    if (roots.length > 0) peakMb = Math.max(peakMb ?? 0, sampleTree(roots).rssMb);
  };
  const timer = setInterval(sample, 250);
  let value: T;
  try {
    value = await work();
  } finally {
    clearInterval(timer);
  }
  sample();
  return { value, peakMb };
}
