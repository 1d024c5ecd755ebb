// The Prometheus exposition of the sidecars and of the control plane, checked by the real promtool after traffic
// (successes and a failure the mesh made), so that every series carries valid names, types, help and labels.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { startControl, type ControlProcess } from '../helpers/control.js';
import { request, requirePackage, run } from '../helpers/http.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';

let app: TestApp;
let mesh: TwoSidecars;
let cp: ControlProcess;
let dir: string;

before(async () => {
  app = await startHttpApp();
  mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http' });
  dir = await mkdtemp(join(tmpdir(), 'mycel-promtool-'));
  cp = await startControl({ stateDir: join(dir, 'cp') });
});
after(async () => {
  await mesh?.close();
  await cp?.stop();
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('promtool check metrics accepts what the sidecars and the control plane expose', async (t) => {
  if (!(await requirePackage(t, 'promtool', 'prometheus'))) return;
  for (let i = 0; i < 5; i++) assert.equal((await request(mesh.apiBinding, { path: `/hello/${i}` })).status, 200);
  assert.equal((await request(mesh.web.outbound, { path: '/', headers: { host: 'nosuch' } })).status, 502);
  const sources: Array<[string, string]> = [
    ['web sidecar', (await request(mesh.web.admin, { path: '/metrics' })).body.toString()],
    ['api sidecar', (await request(mesh.api.admin, { path: '/metrics' })).body.toString()],
    ['control plane', await (await fetch(`${cp.url}/metrics`)).text()],
  ];
  for (const [what, text] of sources) {
    assert.match(text, /^# TYPE /m, `${what} exposes metrics`);
    const r = await run('promtool', ['check', 'metrics'], text);
    assert.equal(r.code, 0, `${what}: promtool says\n${r.stdout}${r.stderr}`);
  }
  // The traffic is there: requests by outcome, with the reason of the mesh's own failure.
  assert.match(sources[0]![1], /^mycel_requests_total\{direction="outbound",source_service="web",destination_service="api",[^}]*status_code="200"[^}]*\} 5$/m);
  assert.match(sources[0]![1], /^mycel_mesh_errors_total\{direction="outbound",[^}]*reason="unknown-service"\} 1$/m);
});
