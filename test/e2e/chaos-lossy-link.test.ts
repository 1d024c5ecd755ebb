// Packet loss on the link between two hosts, where tc netem may be missing: iptables drops 5 % then 20 % of the
// packets both ways on the api host's link while web calls api at a steady rate through its sidecar (retry policy and
// budget on). The ledger checks that nothing is lost, no POST ran twice, no body was cut, that failures stay within
// what the retry budget allows, and that traffic is clean again soon after the loss is cleared.
// Delay and reordering are left to the netem test in chaos-data-plane.test.ts: without sch_netem there is no honest
// way to delay packets here (tbf and htb only shape a rate: they delay a packet only behind a queue of others).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { metric } from '../helpers/http.js';
import { clearLoss, setLoss } from '../hosts/chaos.js';
import { Ledger, ledgerLine, ledgerViolations, type LedgerReport } from '../hosts/ledger.js';
import { ADMIN_PORT, BINDING_PORT, WEB_BINDING, meshWorkDir, meshYaml, startHostSidecar, startLedgerApp } from '../hosts/mesh-hosts.js';
import { createHostBed, requireNetns } from '../hosts/netns-bed.js';

const RATE = 40;
const DEADLINE_MS = 8000;
const PHASE_MS = 6000;
/** What meshYaml's TrafficPolicy for api says: budget ratio 0.2, 10 retries per second, a 10 s window. */
const BUDGET_RATIO = 0.2;
const BUDGET_FLOOR_PER_S = 10;
/** Mesh errors a lossy link may cause: all carry x-mycel-error. */
const FAILURE_REASONS = new Set(['upstream-reset', 'response-timeout', 'connect-failed', 'connect-timeout', 'no-endpoints', 'budget-exhausted', 'idle-timeout', 'circuit-open']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Phase {
  name: string;
  /** Loss on api's link during the phase; 0: none (before, and after clearing). */
  lossPercent: number;
}

const PHASES: Phase[] = [
  { name: 'lossy-baseline', lossPercent: 0 },
  { name: 'lossy-5pct', lossPercent: 5 },
  { name: 'lossy-20pct', lossPercent: 20 },
  { name: 'lossy-cleared', lossPercent: 0 },
];

/**
 * The bound on failures a phase may show. The retry budget lets the caller's sidecar retry up to BUDGET_RATIO of the
 * requests plus BUDGET_FLOOR_PER_S per second; a try failing on the lossy link is retried (GETs; POSTs only when the
 * try never reached api: a connect failure) as long as the budget lasts. A request then fails only when its tries ran
 * out, the policy forbade the retry, or the budget was spent; none of these may cost more requests than the budget
 * could have retried over the phase: failed <= ratio x sent + floor x seconds.
 */
function budgetBound(r: LedgerReport, seconds: number): number {
  return Math.ceil(BUDGET_RATIO * r.sent + BUDGET_FLOOR_PER_S * seconds);
}

function assertBalanced(r: LedgerReport): void {
  assert.deepEqual(ledgerViolations(r), [], r.scenario);
  for (const reason of Object.keys(r.byReason)) assert.ok(FAILURE_REASONS.has(reason), `${r.scenario}: unexpected mesh error ${reason}: ${r.failedSamples.join('; ')}`);
}

for (const transport of ['h1', 'h2'] as const) {
  test(`packet loss on a link (iptables, no netem needed), 5 % then 20 %, transport ${transport}: nothing lost, failures within the retry budget, clean after clearing`, { timeout: 90_000 }, async (t: TestContext) => {
    if (!(await requireNetns(t))) return;
    const { dir, appFile } = await meshWorkDir(t, ['web', 'api']);
    const bed = await createHostBed(t, [{ name: 'web' }, { name: 'api' }], { reachFromTest: true });
    const [web, api] = [bed.host('web'), bed.host('api')];
    const config = join(dir, 'mesh.yaml');
    await writeFile(config, meshYaml({ web, apiHosts: [api], transport }));
    const app = await startLedgerApp(api, appFile, 'api');
    await startHostSidecar(bed, api, 'api', dir, ['--config', config]);
    const webSidecar = await startHostSidecar(bed, web, 'web', dir, ['--config', config], WEB_BINDING);
    const target = `${web.address}:${BINDING_PORT}`;
    const admin = `${web.address}:${ADMIN_PORT}`;
    const counters = async () => [
      await metric(admin, 'mycel_retries_total', { destination_service: 'api' }),
      await metric(admin, 'mycel_retry_budget_exhausted_total', { destination_service: 'api' }),
    ] as const;

    // Phases run back to back: the next ledger starts before the previous one waits for its last answers, so that
    // the load never pauses. A request counts in the phase it was sent in.
    const ledgers: Ledger[] = [];
    const at = [await counters()];
    for (const phase of PHASES) {
      if (phase.lossPercent > 0) await setLoss(api, phase.lossPercent);
      else if (ledgers.length > 0) await clearLoss(api);
      const ledger = new Ledger(`${phase.name}-${transport}`);
      ledger.watchApp(app.stdout!);
      if (phase.name === 'lossy-cleared') ledger.mark();
      ledger.start({ target, rate: RATE, deadlineMs: DEADLINE_MS, maxDurationMs: PHASE_MS });
      const previous = ledgers.at(-1);
      ledgers.push(ledger);
      await Promise.all([previous?.stop(), sleep(PHASE_MS)]);
      at.push(await counters());
    }
    await ledgers.at(-1)!.stop();
    at[PHASES.length] = await counters();
    const reports = ledgers.map((l, i) => {
      const r = l.report();
      // Retries are counted when their request ends, so a phase's numbers may include a few of the previous one's.
      const extra = { loss_pct: PHASES[i]!.lossPercent, retries: at[i + 1]![0] - at[i]![0], budget_refused: at[i + 1]![1] - at[i]![1], failure_bound: budgetBound(r, PHASE_MS / 1000) };
      t.diagnostic(ledgerLine(r, extra) + ` failed_by_method=${JSON.stringify(r.failedByMethod)}`);
      if (r.failed > 0) t.diagnostic(`${r.scenario} failures: ${r.failedSamples.join('; ')}`);
      return r;
    });
    const sessionsClosed = webSidecar.records().filter((l) => String(l.msg).includes('did not answer an HTTP/2 keepalive PING')).length;
    if (transport === 'h2') t.diagnostic(`KEEPALIVE sessions closed for unanswered PINGs during the run: ${sessionsClosed}`);

    for (const r of reports) {
      assertBalanced(r);
      const bound = budgetBound(r, PHASE_MS / 1000);
      assert.ok(r.failed <= bound, `${r.scenario}: ${r.failed} failures, more than the retry budget allows (${bound}): ${JSON.stringify(r.byReason)}; ${r.failedSamples.join('; ')}`);
      assert.ok(r.ok > 0, `${r.scenario}: no request succeeded`);
    }
    const [baseline, , , cleared] = reports as [LedgerReport, LedgerReport, LedgerReport, LedgerReport];
    assert.equal(baseline.failed, 0, `failures before any loss: ${baseline.failedSamples.join('; ')}`);
    const retries = at[PHASES.length]![0] - at[0]![0];
    const refused = at[PHASES.length]![1] - at[0]![1];
    // The budget was spent on the failures: a GET that failed with a retriable reason got at least one retry or was
    // refused one by the budget (its first try ends at the 1.5 s per-try timeout, well before the 4 s request timeout).
    const failedGets = reports.reduce((n, r) => n + (r.failedByMethod.GET ?? 0), 0);
    assert.ok(failedGets <= retries + refused, `${failedGets} GETs failed but only ${retries} retries were sent and ${refused} refused`);
    // ...and the sidecar kept to the budget: in any 10 s window at most 10 x 10 + 0.2 x the requests of that window (and
    // the one before, as the window slides) are retried; the run spans at most ceil(run / 10 s) + 1 windows.
    const sent = reports.reduce((n, r) => n + r.sent, 0);
    const windows = Math.ceil((PHASES.length * PHASE_MS) / 10_000) + 1;
    assert.ok(retries <= BUDGET_FLOOR_PER_S * 10 * windows + 2 * BUDGET_RATIO * sent, `${retries} retries for ${sent} requests: more than the budget allows`);
    // Once the loss is cleared, failures end within a few seconds (connections broken under loss are replaced, the
    // endpoint is healthy again): the end of the last phase is clean.
    assert.ok(cleared.convergeMs !== null && cleared.convergeMs < PHASE_MS - 2000, `failures went on for ${cleared.convergeMs} ms after clearing the loss`);
  });
}
