// A real Prometheus (Debian package) scrapes two sidecars every 500 ms; after a known load the PromQL answers must
// match it: the request count exactly, increase() within its extrapolation, and the latency histogram consistent
// with the app's fixed delay (histogram_quantile above it, within stated bounds).

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
  const born = Date.now();
  assert.equal((await request(mesh.apiBinding, { path: '/hello' })).status, 200);
  const outbound = 'mycel_requests_total{direction="outbound",source_service="web",destination_service="api"}';
  await eventually('the warm-up scraped', async () => ((await scalar(`sum(${outbound})`)) === 1 ? true : undefined), 20_000);
  for (let batch = 0; batch < N / 10; batch++) {
    const replies = await Promise.all(Array.from({ length: 10 }, () => request(mesh.apiBinding, { path: `/slow?ms=${DELAY_MS}` })));
    for (const r of replies) assert.equal(r.status, 200);
  }
  // Both sides counted every request: outbound at web, inbound at api.
  await eventually('the load scraped', async () => ((await scalar(`sum(${outbound})`)) === N + 1 ? true : undefined), 20_000);
  await eventually('the inbound side scraped', async () => ((await scalar('sum(mycel_requests_total{direction="inbound",destination_service="api"})')) === N + 1 ? true : undefined), 20_000);
  await new Promise((r) => setTimeout(r, 5000)); // more samples after the load: less extrapolation below

  // The range starts before the series existed, so increase() does not extrapolate backwards past the first sample
  // (a counter does not go below zero); it only extrapolates forward to the range's end, at most one 500 ms scrape
  // interval over the series' 8 s or more of samples (+7% at most). Stated tolerance: N to N + 15%.
  const range = `${Math.ceil((Date.now() - born) / 1000) + 5}s`;
  const byDestination = await query(`sum by (destination_service) (increase(mycel_requests_total{direction="outbound"}[${range}]))`);
  assert.deepEqual(byDestination.map((s) => s.metric.destination_service), ['api']);
  const increase = Number(byDestination[0]!.value[1]);
  assert.ok(increase >= N - 1e-9 && increase <= N * 1.15, `increase ${increase} for ${N} requests`);
  const rate = await scalar(`sum(rate(mycel_requests_total{direction="inbound",destination_service="api"}[${range}]))`);
  assert.ok(rate !== undefined && rate > 0, 'rate over the same range');

  // Every request took a bit more than the app's 60 ms delay. Exact: no delayed request is in a bucket at or below
  // 50 ms, and the histogram counted them all. Interpolated by histogram_quantile: p50 and p99 above 50 ms; as upper
  // bounds (a loaded 2-core machine delays some requests) p50 at most 250 ms and p99 at most 1 s, both sides.
  const inbound = 'direction="inbound",destination_service="api"';
  assert.ok(((await scalar(`sum(mycel_request_duration_seconds_bucket{${inbound},le="0.05"})`)) ?? 99) <= 1, 'only the warm-up at or below 50 ms');
  assert.equal(await scalar(`sum(mycel_request_duration_seconds_count{${inbound}})`), N + 1);
  const quantile = (q: number, direction: string) =>
    scalar(`histogram_quantile(${q}, sum by (le) (increase(mycel_request_duration_seconds_bucket{direction="${direction}",destination_service="api"}[${range}])))`);
  const found: string[] = [];
  for (const direction of ['inbound', 'outbound']) {
    const p50 = await quantile(0.5, direction);
    const p99 = await quantile(0.99, direction);
    found.push(`${direction} p50 ${p50} s, p99 ${p99} s`);
    assert.ok(p50 !== undefined && p50 > DELAY_MS / 1000 - 0.01 && p50 <= 0.25, `${direction} p50 ${p50}`);
    assert.ok(p99 !== undefined && p99 >= p50 && p99 <= 1, `${direction} p99 ${p99}`);
  }
  t.diagnostic(`increase ${increase} for ${N} requests; ${found.join('; ')}`);
  // Bytes both ways are there too.
  assert.ok(((await scalar('sum(mycel_response_bytes_total{direction="inbound",destination_service="api"})')) ?? 0) > 0);
});
