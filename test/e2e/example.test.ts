// The README's first command: `mycel example` starts the two-sidecar example, answers through the mesh, and Ctrl-C
// (SIGINT) drains and stops every process it started.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MYCEL_BIN } from '../helpers/sidecars.js';
import { request } from '../helpers/http.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('mycel example runs the two-sidecar mesh and stops cleanly on SIGINT', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-example-'));
  const proc = spawn(process.execPath, [MYCEL_BIN, 'example', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`example did not start in 20 s:\n${out}\n${err}`)), 20_000);
      proc.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('Ctrl-C drains and stops everything')) {
          clearTimeout(t);
          resolve();
        }
      });
      void exited.then((code) => reject(new Error(`example exited early (${code}):\n${out}\n${err}`)));
    });
    const hello = await request('127.0.0.1:15001', { path: '/hello', headers: { host: 'api' } });
    assert.equal(hello.status, 200);
    assert.match(hello.body.toString(), /hello from api/);
    const who = await request('127.0.0.1:9191', { path: '/whoami' });
    assert.match(who.body.toString(), /spiffe:\/\/mycel\.local\/ns\/default\/svc\/web/);
    const admin = await request('127.0.0.1:15000', { path: '/ready' });
    assert.equal(admin.status, 200);
    const children = (await import('node:child_process')).execFileSync('ps', ['-o', 'pid=', '--ppid', String(proc.pid)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
    assert.equal(children.length, 2, 'two sidecar processes');
    proc.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.match(out, /stopped\.\n$/);
    for (const pid of children) assert.equal(alive(pid), false, `sidecar ${pid} is gone`);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
