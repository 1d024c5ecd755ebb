// Test harness for long-running CLI commands (`mycel run`, `mycel up`): their output as it comes, waiting for a line,
// the process tree below them (to prove that no child survives), and stopping them by PID.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { MYCEL_BIN } from './mycel-process.js';

export interface CliProcess {
  proc: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in the stream (past or future); rejects after timeoutMs or if the process exits. */
  waitFor(re: RegExp, stream?: 'stdout' | 'stderr', timeoutMs?: number): Promise<RegExpExecArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (if still running) and waits for the exit, SIGKILL after timeoutMs. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startCli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliProcess {
  const proc = spawn(process.execPath, [MYCEL_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const text = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  for (const s of ['stdout', 'stderr'] as const) {
    proc[s]!.setEncoding('utf8').on('data', (d: string) => {
      text[s] += d;
      for (const l of listeners) l();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  let gone = false;
  void exited.then(() => {
    gone = true;
    for (const l of listeners) l();
  });
  return {
    proc,
    pid: proc.pid as number,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitFor(re, stream = 'stdout', timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(text[stream]);
          if (m) {
            done();
            resolve(m);
          } else if (gone) {
            done();
            reject(new Error(`mycel ${args[0]} exited before printing ${re}:\nstdout:\n${text.stdout}\nstderr:\n${text.stderr}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${re} from mycel ${args[0]} within ${timeoutMs} ms:\nstdout:\n${text.stdout}\nstderr:\n${text.stderr}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    exited,
    async stop(signal = 'SIGTERM', timeoutMs = 40_000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    },
  };
}

/** Every process below `pid` (children, grandchildren ...), from one `ps` listing. */
export function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).trim().split('\n');
  const children = new Map<number, number[]>();
  for (const row of rows) {
    const [p, pp] = row.trim().split(/\s+/).map(Number) as [number, number];
    children.set(pp, [...(children.get(pp) ?? []), p]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift() as number) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped by its new parent) counts as gone.
  try {
    return !/^Z/.test(execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim());
  } catch {
    return false;
  }
}

/** Polls until none of `pids` is alive; returns those still alive after timeoutMs (empty: all gone). */
export async function waitAllGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = pids.filter(alive);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Command lines of processes, for failure messages. */
export function commandLines(pids: readonly number[]): string {
  if (pids.length === 0) return '';
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '-p', pids.join(',')], { encoding: 'utf8' });
  } catch {
    return pids.join(', ');
  }
}
