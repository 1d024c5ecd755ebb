// Runs one `mycel` command as a child process for tests: collects its JSON log lines (stderr), waits for a ready line
// on stdout, and stops it by PID.

import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('../../../', import.meta.url)));
export const MYCEL_BIN = join(REPO, 'bin', 'mycel.js');

export type LogRecord = Record<string, unknown>;

export interface MycelProcess {
  proc: ChildProcess;
  /** stderr lines so far (structured JSON logs). */
  logs: string[];
  /** Everything the process wrote on stdout so far (its ready line, access logs). */
  stdout(): string;
  records(): LogRecord[];
  /** Resolves with the first log record (past or future) matching `pred`; rejects after timeoutMs. */
  waitForLog(pred: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function parse(l: string): LogRecord | null {
  try {
    return JSON.parse(l) as LogRecord;
  } catch {
    return null;
  }
}

/**
 * Starts `node [nodeArgs] bin/mycel.js args...` and resolves with the process and the match of `ready` against its
 * stdout; rejects with its logs if it exits first or is not ready within `timeoutMs`.
 */
export function spawnMycel(
  name: string,
  args: string[],
  ready: RegExp,
  opts: { env?: Record<string, string>; nodeArgs?: string[]; timeoutMs?: number; cwd?: string; prefix?: readonly string[] } = {},
): Promise<{ p: MycelProcess; match: RegExpExecArray }> {
  // `prefix` runs node through a wrapper that execs it in place (e.g. `ip netns exec NS`), so the PID stays node's.
  const argv = [...(opts.prefix ?? []), process.execPath, ...(opts.nodeArgs ?? []), MYCEL_BIN, ...args];
  const proc = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MYCEL_LOG_LEVEL: 'info', MYCEL_EXIT_WITH_PARENT: '1', ...opts.env },
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
  });
  const logs: string[] = [];
  const waiters = new Set<(line: string) => void>();
  let errBuf = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    errBuf += d;
    let nl;
    while ((nl = errBuf.indexOf('\n')) !== -1) {
      const line = errBuf.slice(0, nl);
      logs.push(line);
      errBuf = errBuf.slice(nl + 1);
      for (const w of waiters) w(line);
    }
  });
  const waitForLog = (pred: (r: LogRecord) => boolean, timeoutMs = 5000): Promise<LogRecord> => {
    for (const l of logs) {
      const r = parse(l);
      if (r !== null && pred(r)) return Promise.resolve(r);
    }
    return new Promise((resolveWait, rejectWait) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        rejectWait(new Error(`no matching log line from ${name} within ${timeoutMs} ms; last lines:\n${logs.slice(-5).join('\n')}`));
      }, timeoutMs);
      const check = (line: string) => {
        const r = parse(line);
        if (r !== null && pred(r)) {
          clearTimeout(timer);
          waiters.delete(check);
          resolveWait(r);
        }
      };
      waiters.add(check);
    });
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const p: MycelProcess = {
    proc,
    logs,
    stdout: () => out,
    records: () => logs.flatMap((l) => {
      const r = parse(l);
      return r === null ? [] : [r];
    }),
    waitForLog,
    exited,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((resolveStart, rejectStart) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      rejectStart(new Error(`${name} did not get ready in ${timeoutMs} ms:\n${logs.join('\n')}${errBuf}`));
    }, timeoutMs);
    void exited.then((r) => {
      clearTimeout(timer);
      rejectStart(new Error(`${name} exited (${r.code ?? r.signal}) before ready:\n${logs.join('\n')}${errBuf}`));
    });
    proc.stdout!.on('data', () => {
      const m = ready.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolveStart({ p, match: m });
    });
  });
}
