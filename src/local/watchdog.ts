// The app watchdog: a tiny program between a supervisor (`mycel run`, `mycel up`) and an app. It runs the app in its
// own process group and ends that group when the supervisor asks (SIGTERM/SIGINT) or dies (its lifeline, fd 3, closes).
// Usage: node watchdog.js GRACE_MS CMD [ARGS...]; it exits with the app's exit code (128 + signal number if killed).

import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { constants } from 'node:os';

const LIFELINE_FD = 3;
const [graceText, command, ...args] = process.argv.slice(2);
const graceMs = Number(graceText);
if (command === undefined || !Number.isInteger(graceMs) || graceMs < 0) {
  process.stderr.write('usage: node watchdog.js GRACE_MS CMD [ARGS...] (started by mycel run / mycel up, with a lifeline on fd 3)\n');
  process.exit(2);
}

// detached: the app leads its own process group, so that one signal reaches whatever it starts too (sh -c '...; curl').
// fd 3 is not passed on: only this watchdog watches the lifeline.
const app = spawn(command, args, { stdio: ['inherit', 'inherit', 'inherit'], detached: true });
let stopping = false;
let killTimer: NodeJS.Timeout | undefined;

function signalGroup(signal: NodeJS.Signals): void {
  if (app.pid === undefined) return;
  try {
    process.kill(-app.pid, signal);
  } catch {
    /* the group is gone already */
  }
}

/** SIGTERM to the app's group now, SIGKILL once the grace period is over. */
function stop(): void {
  if (stopping) return;
  stopping = true;
  signalGroup('SIGTERM');
  killTimer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
}

app.once('error', (err) => {
  process.stderr.write(`mycel: cannot start ${command}: ${err.message}\n`);
  // 127 is what a shell answers for a command it cannot find or run.
  process.exit(127);
});
app.once('exit', (code, signal) => {
  if (killTimer !== undefined) clearTimeout(killTimer);
  // Whatever the app left behind in its group goes with it, as a service manager would do.
  signalGroup('SIGTERM');
  const signo = signal === null ? 0 : (constants.signals[signal] ?? 0);
  process.exit(code ?? 128 + signo);
});

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('SIGHUP', stop);

// The lifeline: the supervisor holds the other end of this socket pair and never writes. End of file means that the
// supervisor is gone, whichever way it died (even SIGKILL): the kernel closes its end.
let lifeline: Socket | undefined;
try {
  lifeline = new Socket({ fd: LIFELINE_FD, readable: true, writable: false });
} catch {
  /* started by hand without a lifeline: signals still work */
}
if (lifeline !== undefined) {
  lifeline.on('data', () => {});
  lifeline.once('end', stop);
  lifeline.once('error', stop);
  lifeline.once('close', stop);
  // The lifeline must not keep this process alive once the app is gone.
  lifeline.unref();
}
