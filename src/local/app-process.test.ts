// The app watchdog with real processes: exit codes pass through, stop() ends the app's whole process group (SIGKILL
// after the grace period if SIGTERM is ignored), and the app goes when its supervisor is SIGKILLed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitCodeOf, startApp } from './app-process.js';

const quiet = { env: process.env, output: { stdout: 'ignore', stderr: 'ignore' } as const };

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

async function pidFrom(file: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (/^\d+\n/.test(text)) return Number(text.trim());
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no pid in ${file}`);
}

async function eventuallyGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && !gone(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return gone(pid);
}

test('exit codes: the app\'s own, 128 + signal when a signal ended it, 127 when it cannot start', async () => {
  assert.equal(exitCodeOf(3, null), 3);
  assert.equal(exitCodeOf(null, 'SIGTERM'), 143);
  assert.equal(await startApp({ ...quiet, command: 'sh', args: ['-c', 'exit 7'], graceMs: 1000 }).exited, 7);
  assert.equal(await startApp({ ...quiet, command: 'sh', args: ['-c', 'kill -KILL $$'], graceMs: 1000 }).exited, 137);
  assert.equal(await startApp({ ...quiet, command: join(tmpdir(), 'no-such-command-here'), args: [], graceMs: 1000 }).exited, 127);
});

test('stop() ends the app and whatever it started (its process group)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-watchdog-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const app = startApp({ ...quiet, command: 'sh', args: ['-c', `sleep 60 & echo $! > ${dir}/bg; sleep 60`], graceMs: 5000 });
  const background = await pidFrom(join(dir, 'bg'));
  assert.equal(await app.stop(), 143);
  assert.ok(await eventuallyGone(background), 'the background sleep went with the app');
});

test('an app that ignores SIGTERM is killed once its grace period is over', async () => {
  const app = startApp({ ...quiet, command: 'sh', args: ['-c', 'trap "" TERM; sleep 60'], graceMs: 300 });
  await new Promise((r) => setTimeout(r, 200)); // let sh install its trap
  assert.equal(await app.stop(), 137);
});

test('a SIGKILLed supervisor takes its app with it (the watchdog\'s lifeline closes)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-watchdog-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const module = fileURLToPath(new URL('./app-process.js', import.meta.url));
  const script = `const { startApp } = await import(${JSON.stringify(module)});
startApp({ command: 'sh', args: ['-c', 'echo $$ > ${dir}/app; exec sleep 60'], env: process.env, output: { stdout: 'ignore', stderr: 'ignore' }, graceMs: 5000 });
setInterval(() => {}, 1000);`;
  const supervisor = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  const appPid = await pidFrom(join(dir, 'app'));
  supervisor.kill('SIGKILL');
  assert.ok(await eventuallyGone(appPid), 'the app exited with its supervisor');
});
