// A degraded link between two hosts, where tc netem may be missing: web calls api at a steady rate through its sidecar
// (retry policy and budget on) while api's link loses packets (iptables, 5 % then 20 % both ways), or while a delaying
// TCP relay in api's namespace holds its inbound traffic (50 ms, then 2 s each way). A ledger per phase checks that
// nothing is lost, no POST ran twice, no body was cut, that failures stay within what the retry budget allows, and
// that traffic is clean again soon after the fault is cleared. Reordering is left to the netem test in
// chaos-data-plane.test.ts (through the userspace wire where netem is missing): the relay delays a byte stream and
// cannot reorder packets.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { metric } from '../helpers/http.js';
import type { MycelProcess } from '../helpers/mycel-process.js';
import { clearLoss, setLoss } from '../hosts/chaos.js';
import { startDelayRelay } from '../hosts/delay-relay.js';
import { Ledger, ledgerLine, ledgerViolations, type LedgerReport } from '../hosts/ledger.js';
import { ADMIN_PORT, BINDING_PORT, INBOUND_PORT, WEB_BINDING, meshWorkDir, meshYaml, startHostSidecar, startLedgerApp } from '../hosts/mesh-hosts.js';
import { createHostBed, requireNetns, type Host } from '../hosts/netns-bed.js';

const RATE = 40;
const DEADLINE_MS = 8000;
const PHASE_MS = 6000;
/** What meshYaml's TrafficPolicy for api says: budget ratio 0.2, 10 retries per second, a 10 s window. */
const BUDGET_RATIO = 0.2;
const BUDGET_FLOOR_PER_S = 10;
/** Mesh errors a degraded link may cause: all carry x-mycel-error. */
const FAILURE_REASONS = new Set(['upstream-reset', 'response-timeout', 'connect-failed', 'connect-timeout', 'no-endpoints', 'budget-exhausted', 'idle-timeout', 'circuit-open']);
const RELAY_PORT = 15106;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LinkMesh {
  api: Host;
  webSidecar: MycelProcess;
  /** The ledger app's stdout (its execution lines). */
  app: Readable;
  target: string;
  admin: string;
}

async function linkMesh(t: TestContext, transport: 'h1' | 'h2'): Promise<LinkMesh | undefined> {
  if (!(await requireNetns(t))) return undefined;
  const { dir, appFile } = await meshWorkDir(t, ['web', 'api']);
  const bed = await createHostBed(t, [{ name: 'web' }, { name: 'api' }], { reachFromTest: true });
  const [web, api] = [bed.host('web'), bed.host('api')];
  const config = join(dir, 'mesh.yaml');
  await writeFile(config, meshYaml({ web, apiHosts: [api], transport }));
  const app = await startLedgerApp(api, appFile, 'api');
  await startHostSidecar(bed, api, 'api', dir, ['--config', config]);
  const webSidecar = await startHostSidecar(bed, web, 'web', dir, ['--config', config], WEB_BINDING);
  return { api, webSidecar, app: app.stdout!, target: `${web.address}:${BINDING_PORT}`, admin: `${web.address}:${ADMIN_PORT}` };
}

interface Phase {
  name: string;
  /** Sets the link up for the phase (called just before its load starts). */
  apply: () => Promise<void>;
  /** The fault was cleared: convergence is measured from the phase's start. */
  cleared?: boolean;
}

interface PhaseResult {
  report: LedgerReport;
  /** Lost requests the caller's sidecar cut at the request timeout after their head (see cutsAtRequestTimeout). */
  cut: Set<string>;
  /** Retries web's sidecar sent to api, and retries the budget refused (counted when their request ends). */
  retries: number;
  refused: number;
}

/**
 * Runs the phases back to back under one steady load: the next ledger starts before the previous one waits for its
 * last answers, so that the load never pauses; a request counts in the phase it was sent in. Prints a LEDGER line
 * per phase.
 */
async function runPhases(t: TestContext, m: LinkMesh, phases: Phase[]): Promise<PhaseResult[]> {
  const counters = async (): Promise<[number, number]> => [
    await metric(m.admin, 'mycel_retries_total', { destination_service: 'api' }),
    await metric(m.admin, 'mycel_retry_budget_exhausted_total', { destination_service: 'api' }),
  ];
  const ledgers: Ledger[] = [];
  const at = [await counters()];
  for (const phase of phases) {
    await phase.apply();
    const ledger = new Ledger(phase.name);
    ledger.watchApp(m.app);
    if (phase.cleared === true) ledger.mark();
    ledger.start({ target: m.target, rate: RATE, deadlineMs: DEADLINE_MS, maxDurationMs: PHASE_MS });
    const previous = ledgers.at(-1);
    ledgers.push(ledger);
    await Promise.all([previous?.stop(), sleep(PHASE_MS)]);
    at.push(await counters());
  }
  await ledgers.at(-1)!.stop();
  at[phases.length] = await counters();
  const results = ledgers.map((l, i) => {
    const report = l.report();
    const retries = at[i + 1]![0] - at[i]![0];
    const refused = at[i + 1]![1] - at[i]![1];
    const cut = cutsAtRequestTimeout(m.webSidecar, report);
    t.diagnostic(ledgerLine(report, { retries, budget_refused: refused, failure_bound: budgetBound(report), cut_at_request_timeout: cut.size }) + ` failed_by_method=${JSON.stringify(report.failedByMethod)}`);
    if (report.failed > 0) t.diagnostic(`${report.scenario} failures: ${report.failedSamples.join('; ')}`);
    if (cut.size > 0) t.diagnostic(`${report.scenario} responses cut at the request timeout after their head: ${[...cut].join(', ')}`);
    return { report, retries, refused, cut };
  });
  // What the caller's sidecar said when something was lost, for the failure message.
  const lostIds = results.flatMap((p) => p.report.lostSamples.map((l) => l.split(' ')[1]!.replace(/:$/, '')));
  if (lostIds.length > 0) {
    const said = m.webSidecar.records().filter((r) => (r.level === 'warn' || r.level === 'error') && (r.msg !== 'request failed' || lostIds.some((id) => String(r.path).includes(`id=${id}&`))));
    for (const l of said.slice(0, 20)) t.diagnostic(`web sidecar: ${JSON.stringify(l)}`);
  }
  return results;
}

/**
 * The bound on failures a phase may show. The retry budget lets the caller's sidecar retry up to BUDGET_RATIO of the
 * requests plus BUDGET_FLOOR_PER_S per second; a try failing on the degraded link is retried (GETs; POSTs only when
 * the try never reached api: a connect failure) as long as the budget lasts. A request then fails only when its
 * tries ran out, the policy forbade the retry, or the budget was spent. A degradation the budget is sized for must
 * therefore not fail more requests than the budget could have retried over the phase:
 * failed <= ratio x sent + floor x seconds (108 of 240 at 40/s for 6 s). assertBudgetSpentAndKept checks the two
 * premises from the sidecar's counters: retries went to the failed GETs, and never beyond the budget.
 */
function budgetBound(r: LedgerReport): number {
  return Math.ceil(BUDGET_RATIO * r.sent + (BUDGET_FLOOR_PER_S * PHASE_MS) / 1000);
}

/**
 * Lost requests that web's sidecar cut at the request timeout (4 s) after their response head had gone out: HTTP/1.1
 * can end such a response only by closing it, so the client sees a cut, not an x-mycel-error, and the sidecar logs
 * `request failed` with response-timeout and responseStarted. Under 20 % loss the connection carrying a body can stall
 * past that (a segment lost again on each resend while the RTO doubles: 0.2 + 0.4 + 0.8 + 1.6 s). That is the timeout
 * doing its job, not a lost request; a lost request is excused only when the sidecar's log says exactly that for its
 * id (never one that got no answer by the ledger's deadline).
 */
function cutsAtRequestTimeout(sidecar: MycelProcess, r: LedgerReport): Set<string> {
  const logged = new Set<string>();
  for (const l of sidecar.records()) {
    if (l.msg !== 'request failed' || l.error !== 'response-timeout' || l.responseStarted !== true) continue;
    const id = /[?&]id=([^&]+)/.exec(String(l.path))?.[1];
    if (id !== undefined) logged.add(id);
  }
  return new Set(r.lostRequests.filter((l) => logged.has(l.id) && !l.reason.startsWith('no answer')).map((l) => l.id));
}

/** Nothing lost (but the cuts above), doubled or cut; only mesh errors a degraded link explains. */
function assertBalanced({ report: r, cut }: PhaseResult): void {
  const lost = r.lostRequests.filter((l) => !cut.has(l.id));
  assert.deepEqual(ledgerViolations({ ...r, lost: lost.length, lostSamples: lost.slice(0, 5).map((l) => `${l.id}: ${l.reason}`) }), [], r.scenario);
  for (const reason of Object.keys(r.byReason)) assert.ok(FAILURE_REASONS.has(reason), `${r.scenario}: unexpected mesh error ${reason}: ${r.failedSamples.join('; ')}`);
}

/**
 * With h2 every request to api shares one TCP connection: a stall of it (resends lost in a row, the RTO doubling; at
 * 20 % loss each way it happens every few seconds) holds every request in flight (head-of-line blocking), and one
 * past the 1.5 s per-try timeout times them all out at once. GETs are retried, on a new connection once the keepalive
 * found the old one silent; a POST is not (it may have run): its failures follow the stalls, and the retry budget
 * cannot bound them. So for h2 the bound applies to the GETs. (h1 spreads requests over connections: a stall holds one.)
 */
function assertWithinBudget(r: LedgerReport, transport: 'h1' | 'h2'): void {
  const bound = budgetBound(r);
  assert.ok(r.ok > 0, `${r.scenario}: no request succeeded`);
  const failed = transport === 'h1' ? r.failed : (r.failedByMethod.GET ?? 0);
  const what = transport === 'h1' ? 'failures' : 'GETs failed';
  assert.ok(failed <= bound, `${r.scenario}: ${failed} ${what}, more than the retry budget allows (${bound}): ${JSON.stringify(r.byReason)}; ${r.failedSamples.join('; ')}`);
}

/**
 * Over the whole run: the budget went to the failures (a GET that failed with a retriable reason got a retry or was
 * refused one by the budget: its first try ends at the 1.5 s per-try timeout, before the 4 s request timeout), and
 * the sidecar kept to the budget (in a 10 s window at most 10 x 10 + 0.2 x the requests of that window and of the one
 * before, as the window slides; the run spans at most ceil(run / 10 s) + 1 windows).
 */
function assertBudgetSpentAndKept(results: PhaseResult[]): void {
  const sum = (f: (p: PhaseResult) => number) => results.reduce((n, p) => n + f(p), 0);
  const retries = sum((p) => p.retries);
  const refused = sum((p) => p.refused);
  const failedGets = sum((p) => p.report.failedByMethod.GET ?? 0);
  assert.ok(failedGets <= retries + refused, `${failedGets} GETs failed but only ${retries} retries were sent and ${refused} refused`);
  const sent = sum((p) => p.report.sent);
  const windows = Math.ceil((results.length * PHASE_MS) / 10_000) + 1;
  assert.ok(retries <= BUDGET_FLOOR_PER_S * 10 * windows + 2 * BUDGET_RATIO * sent, `${retries} retries for ${sent} requests: more than the budget allows`);
}

/** Once the fault is cleared, failures end within a few seconds: the end of the phase is clean. */
function assertConverged(r: LedgerReport): void {
  assert.ok(r.convergeMs !== null && r.convergeMs < PHASE_MS - 2000, `${r.scenario}: failures went on for ${r.convergeMs} ms after the fault was cleared`);
}

for (const transport of ['h1', 'h2'] as const) {
  test(`packet loss on a link (iptables, no netem needed), 5 % then 20 %, transport ${transport}: nothing lost, failures within the retry budget, clean after clearing`, { timeout: 90_000 }, async (t) => {
    const m = await linkMesh(t, transport);
    if (m === undefined) return;
    const results = await runPhases(t, m, [
      { name: `lossy-baseline-${transport}`, apply: async () => {} },
      { name: `lossy-5pct-${transport}`, apply: () => setLoss(m.api, 5) },
      { name: `lossy-20pct-${transport}`, apply: () => setLoss(m.api, 20) },
      { name: `lossy-cleared-${transport}`, apply: () => clearLoss(m.api), cleared: true },
    ]);
    if (transport === 'h2') {
      // Under heavy loss a PING or its answer can wait longer than the keepalive timeout for TCP to resend it.
      const closed = m.webSidecar.records().filter((l) => String(l.msg).includes('did not answer an HTTP/2 keepalive PING')).length;
      t.diagnostic(`KEEPALIVE sessions closed for unanswered PINGs during the run: ${closed}`);
    }
    for (const p of results) {
      assertBalanced(p);
      assertWithinBudget(p.report, transport);
    }
    assert.equal(results[0]!.report.failed, 0, `failures before any loss: ${results[0]!.report.failedSamples.join('; ')}`);
    assertBudgetSpentAndKept(results);
    assertConverged(results[3]!.report);
  });
}

test('a slow link (a delaying TCP relay in front of api\'s inbound, no netem needed): 50 ms each way with 5 % loss, then 2 s: every request answered in time, retries within the budget, clean after clearing', { timeout: 90_000 }, async (t) => {
  const m = await linkMesh(t, 'h1');
  if (m === undefined) return;
  // A process of the bed, its rule in api's namespace: the bed's teardown removes both.
  const r = await startDelayRelay(m.api, INBOUND_PORT, RELAY_PORT);
  const results = await runPhases(t, m, [
    // Through the relay without delay: it passes traffic unchanged.
    { name: 'slow-relay-only', apply: async () => {} },
    { name: 'slow-50ms-loss5', apply: async () => {
      await r.setDelay(40, 20);
      await setLoss(m.api, 5);
    } },
    // Beyond the 1.5 s per-try timeout: every try times out, the budget caps the retries.
    { name: 'slow-2s', apply: async () => {
      await clearLoss(m.api);
      await r.setDelay(2000);
    } },
    { name: 'slow-cleared', apply: () => r.setDelay(0), cleared: true },
  ]);
  for (const p of results) assertBalanced(p);
  const [relayOnly, slow50, slow2s, cleared] = results as [PhaseResult, PhaseResult, PhaseResult, PhaseResult];
  assert.equal(relayOnly.report.failed, 0, `failures through the relay without delay: ${relayOnly.report.failedSamples.join('; ')}`);
  assertWithinBudget(slow50.report, 'h1');
  // At 2 s each way nothing can succeed within the per-try timeout: each request ends as a mesh error in time.
  assert.ok(slow2s.report.failed > 0, 'a 2 s delay each way failed no request');
  assertBudgetSpentAndKept(results);
  assertConverged(cleared.report);
});
