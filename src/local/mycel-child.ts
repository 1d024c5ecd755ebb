// Runs one `mycel` command (control, proxy) as a supervised child: its own process group, told to exit when its
// parent dies (MYCEL_EXIT_WITH_PARENT), logs to a file, and ready once its ready line appears on stdout.

import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { exitCodeOf } from './app-process.js';
import { MYCEL_BIN } from './paths.js';

export interface MycelChild {
  readonly name: string;
  readonly pid: number;
  /** The match of the ready pattern against stdout. */
  readonly ready: RegExpExecArray;
  readonly logFile: string;
  readonly exited: Promise<number>;
  /** SIGTERM (the child drains), SIGKILL if it is still there after `boundMs`; resolves with its exit code. */
  stop(boundMs: number): Promise<number>;
}

export class ChildStartError extends Error {}

export interface MycelChildOptions {
  name: string;
  args: readonly string[];
  readyLine: RegExp;
  logFile: string;
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

async function logTail(file: string, lines: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function startMycelChild(o: MycelChildOptions): Promise<MycelChild> {
  const log = openSync(o.logFile, 'a');
  const proc = spawn(process.execPath, [MYCEL_BIN, ...o.args], {
    stdio: ['ignore', 'pipe', log],
    detached: true,
    env: { ...(o.env ?? process.env), MYCEL_EXIT_WITH_PARENT: '1' },
  });
  closeSync(log);
  const exited = new Promise<number>((resolve) => proc.once('exit', (code, signal) => resolve(exitCodeOf(code, signal))));
  let stopping: Promise<number> | undefined;
  const stop = (boundMs: number) => {
    if (stopping !== undefined) return stopping;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const backstop = setTimeout(() => proc.kill('SIGKILL'), boundMs);
    stopping = exited.finally(() => clearTimeout(backstop));
    return stopping;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      void stop(1000).then(async () => reject(new ChildStartError(`${o.name} was not ready within ${o.timeoutMs / 1000} s; its log (${o.logFile}) ends with:\n${await logTail(o.logFile, 8)}`)));
    }, o.timeoutMs);
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (settled) return;
      out += d;
      const m = o.readyLine.exec(out);
      if (m === null) return;
      settled = true;
      clearTimeout(timer);
      resolve({ name: o.name, pid: proc.pid as number, ready: m, logFile: o.logFile, exited, stop });
    });
    void exited.then(async (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new ChildStartError(`${o.name} exited with code ${code} before it was ready; its log (${o.logFile}) ends with:\n${await logTail(o.logFile, 8)}`));
    });
  });
}
