// A real Prometheus (Debian package) scrapes two sidecars every 500 ms; after a known load the PromQL answers must
// match it: the request count exactly, increase() within its extrapolation, and histogram_quantile(0.99) inside the
// latency bucket the app's fixed delay puts every request in.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { eventually } from '../helpers/control.js';
import { closedPort, have, request, requirePackage } from '../helpers/http.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';

const N = 100;
const DELAY_MS = 60;

let app: TestApp;
let mesh: TwoSidecars;
let dir: string;
let prom: ChildProcess | null = null;
let promUrl = '';
let promLog = '';

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(q: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; data: { result: Sample[] }; error?: string };
  if (body.status !== 'success') throw new Error(`${q}: ${body.error ?? res.status}`);
  return body.data.result;
}

async function scalar(q: string): Promise<number | undefined> {
  const r = await query(q);
  return r.length === 1 ? Number(r[0]!.value[1]) : undefined;
}

before(async () => {
  app = await startHttpApp();
  mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http' });
  dir = await mkdtemp(join(tmpdir(), 'mycel-prometheus-'));
  if (!(await have('prometheus'))) return;
  const port = await closedPort();
  promUrl = `http://127.0.0.1:${port}`;
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 500ms, evaluation_interval: 500ms }\nscrape_configs:\n  - job_name: mycel\n    static_configs: [ { targets: [ "${mesh.web.admin}", "${mesh.api.admin}" ] } ]\n`,
  );
  prom = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  prom.stderr!.setEncoding('utf8').on('data', (d: string) => (promLog = (promLog + d).slice(-4000)));
  await eventually('prometheus ready', async () => ((await fetch(`${promUrl}/-/ready`).catch(() => null))?.status === 200 ? true : undefined), 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${promLog}`);
  });
});

after(async () => {
  if (prom !== null && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once('exit', r));
    prom.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (prom.exitCode === null) prom.kill('SIGKILL');
  }
  await mesh?.close();
  await app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('Prometheus scraping two sidecars answers PromQL with the load that was sent', async (t) => {
  if (!(await requirePackage(t, 'prometheus', 'prometheus'))) return;
  await eventually('both sidecars scraped', async () => ((await scalar('sum(up{job="mycel"})')) === 2 ? true : undefined), 20_000);
  // One warm-up request, scraped, so that the counted load is an increase of series Prometheus already has.
  assert.equal((await request(mesh.apiBinding, { path: '/hello' })).status, 200);
  const outbound = 'mycel_requests_total{direction="outbound",source_service="web",destination_service="api"}';
  await eventually('the warm-up scraped', async () => ((await scalar(`sum(${outbound})`)) === 1 ? true : undefined), 20_000);
  const start = Date.now();
  for (let batch = 0; batch < N / 10; batch++) {
    const replies = await Promise.all(Array.from({ length: 10 }, () => request(mesh.apiBinding, { path: `/slow?ms=${DELAY_MS}` })));
    for (const r of replies) assert.equal(r.status, 200);
  }
  // Both sides counted every request: outbound at web, inbound at api.
  await eventually('the load scraped', async () => ((await scalar(`sum(${outbound})`)) === N + 1 ? true : undefined), 20_000);
  await eventually('the inbound side scraped', async () => ((await scalar('sum(mycel_requests_total{direction="inbound",destination_service="api"})')) === N + 1 ? true : undefined), 20_000);
  await new Promise((r) => setTimeout(r, 1200)); // two more scrapes: the range below ends after the load

  const range = `${Math.ceil((Date.now() - start) / 1000) + 2}s`;
  // increase() never reports less than the samples' difference (N) and extrapolates to the range's edges: stated
  // tolerance +25% for a range of a few seconds sampled every 500 ms.
  const byDestination = await query(`sum by (destination_service) (increase(mycel_requests_total{direction="outbound"}[${range}]))`);
  assert.deepEqual(byDestination.map((s) => s.metric.destination_service), ['api']);
  const increase = Number(byDestination[0]!.value[1]);
  assert.ok(increase >= N - 1e-9 && increase <= N * 1.25, `increase ${increase} for ${N} requests`);
  const rate = await scalar(`sum(rate(mycel_requests_total{direction="inbound",destination_service="api"}[${range}]))`);
  assert.ok(rate !== undefined && rate > 0, 'rate over the same range');

  // Every request took a bit more than the app's 60 ms delay: p99 lands in the (50 ms, 100 ms] bucket; one bucket
  // of slack above (up to 250 ms) is allowed for a loaded machine.
  const p99 = await scalar(`histogram_quantile(0.99, sum by (le) (increase(mycel_request_duration_seconds_bucket{direction="inbound",destination_service="api"}[${range}])))`);
  assert.ok(p99 !== undefined && p99 > DELAY_MS / 1000 - 0.01 && p99 <= 0.25, `p99 ${p99}`);
  const p99Out = await scalar(`histogram_quantile(0.99, sum by (le) (increase(mycel_request_duration_seconds_bucket{direction="outbound",destination_service="api"}[${range}])))`);
  assert.ok(p99Out !== undefined && p99Out > DELAY_MS / 1000 - 0.01 && p99Out <= 0.25, `outbound p99 ${p99Out}`);
  t.diagnostic(`increase ${increase} for ${N} requests; p99 inbound ${p99} s, outbound ${p99Out} s`);
  // Bytes both ways are there too.
  assert.ok(((await scalar('sum(mycel_response_bytes_total{direction="inbound",destination_service="api"})')) ?? 0) > 0);
});
