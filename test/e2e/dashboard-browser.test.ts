// The dashboard in a real headless Chromium against `mycel up --demo`: the sign-in link, the graph with the demo's
// services and live edges, a service page, a live tap, traces, the proxies, and a fault that shows as a falling
// success rate. Screenshots go to test-results/ (gitignored) for a person to look at.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startCli, type CliProcess } from '../helpers/cli-process.js';
import { eventually } from '../helpers/control.js';
import { requirePackage, run } from '../helpers/http.js';
import { MYCEL_BIN, REPO } from '../helpers/mycel-process.js';

const SHOTS = join(REPO, 'test-results');
const SERVICES = ['catalog', 'loadgen', 'ratings', 'reviews', 'web'];
const CALLS = ['loadgen->web', 'web->catalog', 'web->reviews', 'reviews->ratings'];
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface EdgeRow {
  edge: string;
  rps: number;
  success: number | null;
}

/** The Connections table of the topology page: rps and success per caller -> callee. */
async function edgeRows(page: Page): Promise<EdgeRow[]> {
  return page.$$eval('[data-testid=edges-table] tr[data-edge]', (rows) =>
    rows.map((r) => {
      const cells = [...r.querySelectorAll('td')].map((c) => c.textContent ?? '');
      const pct = /([\d.]+)%/.exec(cells[2] ?? '');
      return { edge: r.getAttribute('data-edge') ?? '', rps: Number(cells[1]), success: pct ? Number(pct[1]) / 100 : null };
    }),
  );
}

// One mesh and one browser for the file; top-level tests, so that each has the runner's whole timeout.
let cwd: string;
let up: CliProcess | undefined;
let browser: Browser | undefined;
let page: Page;
let link: string;
let control: string;
const problems: string[] = [];

before(async () => {
  await mkdir(SHOTS, { recursive: true });
  cwd = await mkdtemp(join(tmpdir(), 'mycel-dash-'));
  up = startCli(['up', '--demo', '--listen', '127.0.0.1:0'], { cwd });
  await up.waitFor(/The demo runs\./, 'stdout', 60_000);
  control = (JSON.parse(await readFile(join(cwd, '.mycel', 'up.json'), 'utf8')) as { control: { url: string } }).control.url;
  const r = await run(process.execPath, [MYCEL_BIN, 'dashboard', '--dir', join(cwd, '.mycel'), '--no-browser']);
  assert.equal(r.code, 0, r.stderr);
  link = /Sign-in link[^:]*: (\S+)/.exec(r.stdout)?.[1] as string;
});

after(async () => {
  await browser?.close();
  await up?.stop('SIGINT', 30_000);
  await rm(cwd, { recursive: true, force: true });
});

/** The browser, once per file; each test skips (or, under CI, fails) without Chromium. */
async function open(t: { skip(msg: string): void }): Promise<boolean> {
  if (!(await requirePackage(t, 'chromium', 'chromium'))) return false;
  if (browser === undefined) {
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    // The local mesh's root is not in Chromium's store (a user imports .mycel/ca.pem, or accepts it once).
    page = await browser.newPage({ viewport: { width: 1440, height: 900 }, colorScheme: 'dark', ignoreHTTPSErrors: true });
    // A CSP violation or a script error is a bug, whatever the page shows.
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const res = await page.goto(link);
    assert.equal(res?.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/', 'the sign-in link lands on the dashboard');
  }
  return true;
}

test('signs in with the link and draws the demo\'s services and who calls whom', async (t) => {
  if (!(await open(t))) return;
  await page.goto(`${control}/#/`);
  for (const s of SERVICES) await page.waitForSelector(`svg [data-node="${s}"]`, { timeout: 20_000 });
  // Drawn from the proxies' subscriptions before stats, and from stats once measured.
  for (const e of CALLS) await page.waitForSelector(`svg [data-edge="${e}"]`, { timeout: 30_000 });
  assert.deepEqual(await page.$$eval('[data-testid=services-table] tr[data-service]', (rows) => rows.map((r) => r.getAttribute('data-service'))), SERVICES);
  await page.screenshot({ path: join(SHOTS, 'dashboard-topology.png') });
  assert.deepEqual(problems, []);
});

test('the edges show live traffic: non-zero rps and a success rate (needs GET /api/v1/stats)', async (t) => {
  if (!(await open(t))) return;
  await page.goto(`${control}/#/`);
  const rows = await eventually('every demo call to show rps > 0', async () => {
    const r = await edgeRows(page);
    return CALLS.every((c) => (r.find((x) => x.edge === c)?.rps ?? 0) > 0) ? r : undefined;
  }, 45_000);
  for (const c of CALLS) assert.ok((rows.find((x) => x.edge === c)?.success ?? -1) >= 0, c);
  // The labels on the graph carry the same numbers.
  const label = await page.textContent('svg [data-edge="web->reviews"] .edge-label text');
  assert.match(label ?? '', /^[\d.]+ rps · [\d.]+% · [\d.]+ m?s$/);
  await page.waitForTimeout(1500); // the layout settles
  await page.screenshot({ path: join(SHOTS, 'dashboard-topology-live.png') });
});

test('a service page: endpoints with health and version, the routes and policies in force', async (t) => {
  if (!(await open(t))) return;
  await page.goto(`${control}/#/`);
  await page.click('svg [data-node="reviews"]');
  await page.waitForURL(/#\/service\/default\/reviews$/);
  await page.waitForSelector('[data-testid=endpoints-table] tbody tr:nth-child(2)', { timeout: 15_000 });
  const endpoints = await page.$$eval('[data-testid=endpoints-table] tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent ?? '')));
  assert.deepEqual(endpoints.map((r) => r[1]).sort(), ['v1', 'v2']);
  for (const r of endpoints) assert.match(r[2] ?? '', /ready/);
  const config = (await page.textContent('[data-testid=config-list]')) ?? '';
  assert.match(config, /reviews-canary/);
  assert.match(config, /reviews\.v1 90% \/ reviews\.v2 10%/);
  assert.match(config, /reviews-testers/);
  assert.match(config, /TrafficPolicy/);
  await page.screenshot({ path: join(SHOTS, 'dashboard-service.png'), fullPage: true });
  assert.deepEqual(problems, []);
});

test('the service page plots its golden signals (needs GET /api/v1/stats)', async (t) => {
  if (!(await open(t))) return;
  await page.goto(`${control}/#/service/default/web`);
  await page.waitForSelector('.plots .uplot canvas', { timeout: 15_000 });
  const rps = await eventually('web\'s requests per second', async () => {
    const text = await page.textContent('[data-testid=service-metrics] .metric:first-child .metric-value');
    return text !== null && Number(text) > 0 ? Number(text) : undefined;
  }, 30_000);
  assert.ok(rps > 0);
});

test('the live tap shows requests as they happen (needs GET /api/v1/tap)', async (t) => {
  if (!(await open(t))) return;
  await page.goto(`${control}/#/tap`);
  await page.selectOption('select[name=service]', 'reviews');
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=tap-table] tbody tr:nth-child(3)', { timeout: 20_000 });
  const rows = await page.$$eval('[data-testid=tap-table] tbody tr.tap-row', (trs) => trs.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent ?? '')));
  assert.ok(rows.some((r) => /reviews/.test(r[2] ?? '') && /^GET$/.test(r[3] ?? '')), JSON.stringify(rows.slice(0, 3)));
  await page.click('[data-testid=tap-table] tbody tr.tap-row');
  await page.waitForSelector('tr.details dl');
  await page.screenshot({ path: join(SHOTS, 'dashboard-tap.png') });
  await page.click('button[type=submit]'); // stop
  assert.deepEqual(problems, []);
});

test('recent traces and one as a waterfall (needs GET /api/v1/traces)', async (t) => {
  if (!(await open(t))) return;
  await page.goto(`${control}/#/traces`);
  // The newest trace may still be arriving (each sidecar sends its spans in batches): open one that already has 3+.
  const row = page.locator('[data-testid=traces-table] tbody tr').filter({ has: page.locator('td.num', { hasText: /^([3-9]|\d{2,})$/ }) }).first();
  await row.waitFor({ timeout: 30_000 });
  await row.locator('a').click();
  await page.waitForSelector('[data-testid=waterfall] .wf-row:nth-child(3)', { timeout: 15_000 });
  await page.screenshot({ path: join(SHOTS, 'dashboard-trace.png') });
});

test('the proxies: each with its config version and ACK', async (t) => {
  if (!(await open(t))) return;
  await page.goto(`${control}/#/proxies`);
  await page.waitForSelector('[data-testid=proxies-table] tbody tr:nth-child(6)', { timeout: 15_000 });
  const rows = await page.$$eval('[data-testid=proxies-table] tbody tr', (trs) => trs.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent ?? '')));
  assert.equal(rows.length, 6);
  for (const r of rows) {
    assert.match(r[3] ?? '', /^v\d+/);
    assert.match(r[4] ?? '', /ACK/);
  }
  await page.screenshot({ path: join(SHOTS, 'dashboard-proxies.png') });
});

test('a fault on ratings shows as a falling success rate on reviews -> ratings (needs GET /api/v1/stats)', async (t) => {
  if (!(await open(t))) return;
  // The demo's fault answers 10% of the calls; every call now.
  const fault = (await readFile(join(REPO, 'examples', 'demo', 'ratings-fault.yaml'), 'utf8')).replace(/percentage: 10\b/, 'percentage: 100');
  assert.match(fault, /percentage: 100/);
  const applied = await run(process.execPath, [MYCEL_BIN, 'apply', '-f', '-', '--control', control, '--token', join(cwd, '.mycel', 'admin-token'), '--ca', join(cwd, '.mycel', 'ca.pem')], fault);
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  await page.goto(`${control}/#/`);
  const rate = await eventually('the success rate of reviews -> ratings to fall below 50%', async () => {
    const r = (await edgeRows(page)).find((x) => x.edge === 'reviews->ratings');
    return r?.success !== null && r?.success !== undefined && r.success < 0.5 ? r.success : undefined;
  }, 120_000);
  assert.ok(rate < 0.5);
  assert.ok(await page.$('svg [data-edge="reviews->ratings"].h-bad'), 'the edge turns red');
  await page.screenshot({ path: join(SHOTS, 'dashboard-fault.png') });
  // Light mode, for a person to look at.
  await page.emulateMedia({ colorScheme: 'light' });
  await page.screenshot({ path: join(SHOTS, 'dashboard-fault-light.png') });
  assert.deepEqual(problems, []);
});
