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
  assert.equal((await request(mesh.apiBinding, { method: 'POST', path: '/echo', body: Buffer.alloc(1234, 7) })).status, 200);
  assert.equal((await request(mesh.apiBinding, { method: 'POST', path: '/echo', headers: { 'transfer-encoding': 'chunked' }, body: 'x'.repeat(100) })).status, 200);
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
  // Request body bytes, whether the length was declared or chunked, on both sides.
  assert.match(sources[0]![1], /^mycel_request_bytes_total\{direction="outbound",source_service="web",destination_service="api"\} 1334$/m);
  assert.match(sources[1]![1], /^mycel_request_bytes_total\{direction="inbound",source_service="web",destination_service="api"\} 1334$/m);
});

test('label cardinality is bounded: 1000 distinct paths, query strings and header values add no series', async () => {
  const series = async (admin: string) => (await request(admin, { path: '/metrics' })).body.toString().split('\n').filter((l) => l.length > 0 && !l.startsWith('#'));
  assert.equal((await request(mesh.apiBinding, { path: '/warm-up' })).status, 200);
  const before = [await series(mesh.web.admin), await series(mesh.api.admin)];
  for (let batch = 0; batch < 100; batch++) {
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, j) => request(mesh.apiBinding, { path: `/items/${batch * 10 + j}?q=${batch}`, headers: { 'user-agent': `agent-${batch}-${j}`, 'x-request-id': `${batch}-${j}` } })),
    );
    for (const r of replies) assert.equal(r.status, 200);
  }
  const after = [await series(mesh.web.admin), await series(mesh.api.admin)];
  const names = (lines: string[]) => lines.map((l) => l.slice(0, l.lastIndexOf(' ')));
  assert.deepEqual(names(after[0]!), names(before[0]!), 'web: the same series, only their values moved');
  assert.deepEqual(names(after[1]!), names(before[1]!), 'api: the same series, only their values moved');
  assert.doesNotMatch(after.flat().join('\n'), /items|agent-|\?q=/);
});
