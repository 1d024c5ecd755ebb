// Starts an app under the watchdog (src/local/watchdog.ts) and stops it: SIGTERM, then SIGKILL after a grace period.
// The app dies with this process even when this process is SIGKILLed, because the watchdog holds a lifeline to it.

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const WATCHDOG = fileURLToPath(new URL('./watchdog.js', import.meta.url));

export interface AppProcessOptions {
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** The app's stdout and stderr: inherited (a terminal), file descriptors (log files), or dropped. */
  output: 'inherit' | { stdout: number | 'ignore'; stderr: number | 'ignore' };
  /** How long the app has between SIGTERM and SIGKILL. */
  graceMs: number;
}

export interface AppProcess {
  /** The watchdog's PID (the app runs as its child, in its own process group). */
  readonly pid: number;
  /** The app's exit code (128 + signal number when a signal ended it). */
  readonly exited: Promise<number>;
  /** Asks the app to stop (SIGTERM, SIGKILL after the grace period) and resolves with its exit code. */
  stop(): Promise<number>;
}

/** The shell's convention for a process that a signal ended: 128 + the signal's number. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

export function startApp(o: AppProcessOptions): AppProcess {
  const stdio: StdioOptions = o.output === 'inherit' ? ['inherit', 'inherit', 'inherit', 'pipe'] : ['ignore', o.output.stdout, o.output.stderr, 'pipe'];
  // Own process group: a terminal's Ctrl-C reaches the supervisor only, which then stops things in order.
  const proc: ChildProcess = spawn(process.execPath, [WATCHDOG, String(o.graceMs), o.command, ...o.args], { stdio, env: o.env, detached: true, ...(o.cwd !== undefined ? { cwd: o.cwd } : {}) });
  if (proc.pid === undefined) throw new Error(`cannot start the watchdog for ${o.command}`);
  // The lifeline (fd 3): never written; the socket is unref'd so that it does not keep the supervisor alive.
  const lifeline = proc.stdio[3] as Socket;
  lifeline.on('error', () => {});
  lifeline.unref();
  const exited = new Promise<number>((resolve) => proc.once('exit', (code, signal) => resolve(exitCodeOf(code, signal))));
  let stopping: Promise<number> | undefined;
  return {
    pid: proc.pid,
    exited,
    stop() {
      if (stopping !== undefined) return stopping;
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      // The watchdog SIGKILLs the app after the grace period; should the watchdog itself hang, it is killed too.
      const backstop = setTimeout(() => proc.kill('SIGKILL'), o.graceMs + 2000);
      stopping = exited.finally(() => clearTimeout(backstop));
      return stopping;
    },
  };
}
