// `mycel run` end to end against a real control plane: a Python http.server and a curl loop join the mesh unchanged
// (one is reached from another sidecar, the other goes out through HTTP_PROXY), the exit code is the app's, the app
// stops before its sidecar, and a SIGKILLed `mycel run` leaves no process behind.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpApp } from '../helpers/apps.js';
import { alive, commandLines, descendants, startCli, waitAllGone, type CliProcess } from '../helpers/cli-process.js';
import { eventually, startControl, type ControlProcess } from '../helpers/control.js';
import { closedPort, request, requirePackage, run as runCommand } from '../helpers/http.js';
import { MYCEL_BIN } from '../helpers/mycel-process.js';
import { startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

const SIDECAR_LINE = /sidecar ready: outbound (\S+) \(HTTP_PROXY\) inbound (\S+) \(mTLS\) admin (\S+);/;

describe('mycel run', () => {
  let dir: string;
  let cp: ControlProcess;
  const started: CliProcess[] = [];
  const sidecars: SidecarProcess[] = [];

  const run = (args: string[], cwd?: string) => {
    const p = startCli(['run', '--dir', dir, '--grace', '3s', ...args], cwd ? { cwd } : {});
    started.push(p);
    return p;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-run-'));
    // The control plane writes control.json and admin-token into the state directory, as `mycel up` does.
    cp = await startControl({ stateDir: dir, lease: '3s' });
  });

  after(async () => {
    await Promise.all(started.map((p) => p.stop('SIGKILL')));
    await Promise.all(sidecars.map((s) => s.stop('SIGKILL')));
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a Python http.server joins the mesh and is reached from another sidecar; SIGTERM stops it, then its sidecar', async (t) => {
    if (!(await requirePackage(t, 'python3', 'python3'))) return;
    const site = join(dir, 'site');
    await mkdir(site);
    await writeFile(join(site, 'hello.txt'), 'hello from python\n');
    const port = await closedPort();
    const files = run(['--service', 'files', '--port', String(port), '--', 'python3', '-m', 'http.server', String(port), '--bind', '127.0.0.1'], site);
    await files.waitFor(/app listening on 127\.0\.0\.1:\d+/, 'stderr');
    // A caller's sidecar from the test harness, with a certificate from the same local CA that mycel run used.
    const caller = await startSidecar({ dir, service: 'caller', appPort: 9, configFiles: [], meshCa: true, upstreams: ['files=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('caller'), stateDir: join(dir, 'state-caller') } });
    sidecars.push(caller);
    const reply = await eventually('the python app through caller -> files', async () => {
      const r = await request(caller.upstreams.files as string, { path: '/hello.txt' });
      return r.status === 200 ? r : undefined;
    });
    assert.equal(reply.body.toString(), 'hello from python\n');
    assert.match(String(reply.headers.server), /SimpleHTTP.*Python/);

    const kids = descendants(files.pid);
    assert.ok(kids.length >= 3, `sidecar, watchdog and python under mycel run:\n${commandLines(kids)}`);
    const exit = await files.stop('SIGTERM');
    // python3 dies of the SIGTERM: 128 + 15, passed on as mycel run's own exit code.
    assert.equal(exit.code, 143, files.stderr());
    const err = files.stderr();
    assert.ok(err.indexOf('SIGTERM: stopping the app, then draining the sidecar') < err.indexOf('stopped (exit code 143)'));
    const sidecarLog = await readFile(join(dir, 'logs', 'files-sidecar.log'), 'utf8');
    assert.match(sidecarLog, /"msg":"draining".*"reason":"SIGTERM"/, 'the sidecar was drained on request, not orphaned');
    assert.deepEqual(await waitAllGone(kids, 10_000), []);
  });

  test('a curl loop goes out through HTTP_PROXY to a mesh service, and mycel run exits with its exit code', async (t) => {
    if (!(await requirePackage(t, 'curl', 'curl'))) return;
    const app = await startHttpApp();
    t.after(() => app.close());
    // The destination: a test app behind a harness sidecar registered as service "api".
    const api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], meshCa: true, control: { url: cp.url, tokenFile: await cp.joinTokenFile('api'), stateDir: join(dir, 'state-api') } });
    sidecars.push(api);
    const stopFile = join(dir, 'stop-poller');
    // Bounded: at most 300 rounds of 0.1 s; a plain curl that knows nothing of the mesh, only HTTP_PROXY.
    const loop = `i=0; while [ $i -lt 300 ] && [ ! -e ${stopFile} ]; do curl -s -o /dev/null -w 'status=%{http_code}\\n' http://api/from-curl; i=$((i+1)); sleep 0.1; done; exit 5`;
    const poller = run(['--service', 'poller', '--port', String(await closedPort()), '--', 'sh', '-c', loop]);
    const [, outbound, , admin] = await poller.waitFor(SIDECAR_LINE, 'stderr');
    await poller.waitFor(/status=200\n/, 'stdout');
    assert.equal(app.seen.at(-1)?.url, '/from-curl');
    assert.equal(app.seen.at(-1)?.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/poller');
    const metrics = (await request(admin as string, { path: '/metrics' })).body.toString();
    assert.match(metrics, /mycel_requests_total\{[^}]*destination_service="api"[^}]*status_code="200"[^}]*\} [1-9]/);
    assert.ok(outbound);
    await writeFile(stopFile, '');
    const exit = await poller.exited;
    assert.equal(exit.code, 5, poller.stderr());
    assert.match(poller.stderr(), /the app exited with code 5; draining the sidecar/);
  });

  test('a SIGKILLed mycel run leaves no child: the sidecar and the app (with what it started) notice and exit', async () => {
    const sleeper = run(['--service', 'sleeper', '--port', String(await closedPort()), '--', 'sh', '-c', 'sleep 120 & sleep 120; wait']);
    await sleeper.waitFor(/app started/, 'stderr');
    const kids = await eventually('sidecar, watchdog, sh and both sleeps', async () => {
      const k = descendants(sleeper.pid);
      return k.length >= 5 ? k : undefined;
    });
    sleeper.proc.kill('SIGKILL');
    await sleeper.exited;
    const left = await waitAllGone(kids, 15_000);
    assert.deepEqual(left, [], `still running after mycel run was SIGKILLed:\n${commandLines(left)}`);
    assert.equal(alive(sleeper.pid), false);
  });

  test('mycel check fails on a proxy that rejects its config, and names the reason and the fix', async () => {
    const bad = await cp.cli(['apply', '-f', '-'], 'apiVersion: mycel.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: mesh }\nspec: { trustDomain: other.test }\n');
    assert.equal(bad.code, 0, bad.stderr);
    try {
      const r = await eventually('mycel check to see a NACK', async () => {
        const c = await runCommand(process.execPath, [MYCEL_BIN, 'check', '--dir', dir]);
        return /rejected version/.test(c.stdout) ? c : undefined;
      }, 15_000);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /✗ default\/\S+ \(\S+\) {2}rejected version \d+: .*trust domain "other\.test" differs.*\n {4}fix: correct the resource it names and apply again/);
      assert.match(r.stdout, /✓ control plane ready/);
    } finally {
      await cp.cli(['apply', '-f', '-'], 'apiVersion: mycel.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: mesh }\nspec: { trustDomain: mycel.local }\n');
    }
  });

  test('without a control plane it fails at once and says how to start one', async () => {
    const p = startCli(['run', '--dir', join(dir, 'nowhere'), '--control', `http://127.0.0.1:${await closedPort()}`, '--service', 'x', '--port', '9', '--', 'true']);
    const exit = await p.exited;
    assert.equal(exit.code, 1);
    assert.match(p.stderr(), /cannot reach the control plane .*\n {2}fix: start it \(mycel control or mycel up\)/);
  });
});
