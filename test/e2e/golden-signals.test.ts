// Golden signals end to end: a real control plane and two sidecars (web -> api) under a known load with a Fault that
// aborts about 20% of the calls with 500; GET /api/v1/stats and `mycel stat` must count exactly what the client saw.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import type { StatsReport } from '../../src/control-plane/stats/stats-report.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { API_AND_WEB_SERVICES, eventually, startControl, type ControlProcess } from '../helpers/control.js';
import { keepAliveClient } from '../helpers/http.js';
import { startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

const N = 200;

const CONFIG = `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local }
---
${API_AND_WEB_SERVICES}---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: some-500s }
spec: { abort: { httpStatus: 500, percentage: 20 } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-faulty }
spec:
  parentRefs: [ { group: "", kind: Service, name: api, port: 80 } ]
  rules:
  - filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: some-500s } } ]
    backendRefs: [ { name: api, port: 80 } ]
`;

let dir: string;
let cp: ControlProcess;
let app: TestApp;
let api: SidecarProcess;
let web: SidecarProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mycel-stat-'));
  await writeDevCertificates(dir, { services: ['web', 'api'] });
  cp = await startControl({ stateDir: join(dir, 'cp'), extraArgs: ['--stats-interval', '300ms'] });
  await writeFile(join(dir, 'mesh.yaml'), CONFIG);
  const applied = await cp.cli(['apply', '-f', join(dir, 'mesh.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  app = await startHttpApp();
  api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: await cp.joinTokenFile('api') } });
  web = await startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('web') } });
});

after(async () => {
  await Promise.all([web?.stop(), api?.stop()]);
  await cp?.stop();
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('mycel stat counts what was sent: requests, success rate with a 20% fault, per service, route and edge', async (t) => {
  // The route reaches web once api is registered; until then requests may fail, so wait before the counted load.
  const client = keepAliveClient(web.upstreams.api as string);
  try {
    await eventually('api registered and reachable through web', async () => ((await client.get('/hello')).status < 500 ? true : undefined), 15_000);
    // The warm-up requests are in the window too: start counting from what the control plane has now.
    const base = await eventually('the warm-up reported', async () => {
      const r = await cp.api<StatsReport>('GET', '/api/v1/stats?window=600');
      const e = r.body.edges.find((x) => x.source === 'web' && x.destination === 'api');
      return e !== undefined ? r.body : undefined;
    });
    await new Promise((r) => setTimeout(r, 700)); // let a late summary of the warm-up land before the baseline
    const before = (await cp.api<StatsReport>('GET', '/api/v1/stats?window=600')).body;
    assert.ok(base.edges.length > 0);
    let ok = 0;
    for (let i = 0; i < N; i++) {
      const r = await client.get(`/items/${i}`);
      assert.ok(r.status === 200 || r.status === 500, `status ${r.status}`);
      if (r.status === 200) ok++;
    }
    assert.ok(ok > N * 0.5 && ok < N, `the fault aborted some but not most (${N - ok} of ${N})`);

    const edgeOf = (r: StatsReport) => r.edges.find((x) => x.source === 'web' && x.destination === 'api');
    const serviceOf = (r: StatsReport, s: string) => r.services.find((x) => x.service === s);
    const routeOf = (r: StatsReport) => r.routes.find((x) => x.route === 'default/api-faulty');
    const beforeEdge = { n: edgeOf(before)?.requests ?? 0, ok: Math.round((edgeOf(before)?.requests ?? 0) * (edgeOf(before)?.successRate ?? 0)) };
    const beforeApi = serviceOf(before, 'api')?.requests ?? 0;
    const beforeRoute = routeOf(before)?.requests ?? 0;
    const report = await eventually('the load reported', async () => {
      const r = (await cp.api<StatsReport>('GET', '/api/v1/stats?window=600')).body;
      return (edgeOf(r)?.requests ?? 0) - beforeEdge.n === N && (serviceOf(r, 'api')?.requests ?? 0) - beforeApi === ok ? r : undefined;
    }, 15_000);

    // The edge (outbound at web) saw every request; the fault's 500s are its failures.
    const edge = edgeOf(report)!;
    assert.equal(Math.round(edge.requests * (edge.successRate as number)) - beforeEdge.ok, ok);
    assert.equal(edge.rps, Math.round((edge.requests / 600) * 1000) / 1000);
    assert.ok(edge.p50Ms !== null && edge.p99Ms !== null && edge.p50Ms <= edge.p99Ms && edge.p99Ms < 30_000);
    // api served only what the fault let through, all of it successfully.
    const apiRow = serviceOf(report, 'api')!;
    assert.equal(apiRow.successRate, 1);
    assert.equal(routeOf(report)!.requests - beforeRoute, N);
    // web has a proxy but served nothing: listed with rps 0 and no latencies.
    assert.deepEqual(serviceOf(report, 'web'), { service: 'web', namespace: 'default', rps: 0, successRate: null, p50Ms: null, p95Ms: null, p99Ms: null, requests: 0 });
    const timeline = report.timeline.find((t) => t.service === 'api')!;
    assert.equal(timeline.points.length, 60);
    assert.equal(timeline.points.reduce((a, p) => a + p.rps * 10, 0), apiRow.requests);

    // The CLI: the table of every service, and one service with its route and edges.
    const all = await cp.cli(['stat', '--window', '10m']);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^SERVICE\s+RPS\s+SUCCESS\s+P50\s+P95\s+P99\s+REQUESTS$/m);
    assert.match(all.stdout, new RegExp(`^api\\s+[\\d.]+\\s+100\\.00%\\s+\\S+\\s+\\S+\\s+\\S+\\s+${apiRow.requests}$`, 'm'));
    assert.match(all.stdout, /^web\s+0\.00\s+-\s+-\s+-\s+-\s+0$/m);
    const one = await cp.cli(['stat', 'api', '--window', '600s']);
    assert.equal(one.code, 0, one.stderr);
    for (const line of `$ mycel stat\n${all.stdout}$ mycel stat api\n${one.stdout}`.split('\n')) t.diagnostic(line);
    assert.match(one.stdout, /^ROUTE\s+RPS/m);
    assert.match(one.stdout, new RegExp(`^default/api-faulty\\s+.*\\s${routeOf(report)!.requests}$`, 'm'));
    assert.match(one.stdout, new RegExp(`^FROM\\s+RPS[\\s\\S]*^web\\s+.*\\s${edge.requests}$`, 'm'));
    const json = await cp.cli(['stat', 'web', '-o', 'json', '--window', '10m']);
    assert.equal(json.code, 0, json.stderr);
    const narrowed = JSON.parse(json.stdout) as StatsReport;
    assert.deepEqual(narrowed.edges.map((e) => `${e.source}->${e.destination}`), ['web->api']);
    assert.deepEqual(narrowed.services.map((s) => s.service), ['web']);
    const bad = await cp.cli(['stat', '--window', '2h']);
    assert.equal(bad.code, 2);
    assert.equal((await cp.api('GET', '/api/v1/stats?window=601')).status, 400);
  } finally {
    client.close();
  }
});
