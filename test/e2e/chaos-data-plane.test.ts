// Chaos on the data plane across hosts (network namespaces): web calls api, two instances on two hosts, at a steady
// rate while a host dies, a link is cut and healed, a link loses and reorders packets (tc netem, or the userspace wire
// standing in for it where the kernel has no sch_netem), or a sidecar drains. The
// ledger checks that nothing is lost: every request succeeded or failed with a mesh error in time, no POST ran twice,
// no truncated body passed, and it measures how long failures go on after the fault (or heal).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { MycelProcess } from '../helpers/mycel-process.js';
import { clearNetem, heal, killHost, netemUnavailable, partition, setNetem, type NetemImpl } from '../hosts/chaos.js';
import { Ledger, ledgerLine, ledgerViolations, type LedgerReport } from '../hosts/ledger.js';
import { BINDING_PORT, WEB_BINDING, meshWorkDir, meshYaml, startHostSidecar, startLedgerApp } from '../hosts/mesh-hosts.js';
import { createHostBed, requireNetns, type Host, type HostBed } from '../hosts/netns-bed.js';
import { countersSince, requireUserspaceWire, wireCountersLine, type WireStats } from '../hosts/userspace-wire.js';

const RATE = 40;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DEADLINE_MS = 8000;
/** Mesh errors a caller may answer while an instance is gone: all carry x-mycel-error. */
const FAILURE_REASONS = new Set(['upstream-reset', 'response-timeout', 'connect-failed', 'connect-timeout', 'no-endpoints', 'budget-exhausted', 'draining', 'idle-timeout', 'circuit-open']);

interface ChaosMesh {
  bed: HostBed;
  web: Host;
  api1: Host;
  api2: Host;
  webSidecar: MycelProcess;
  apiSidecars: MycelProcess[];
  ledger: Ledger;
  target: string;
}

/** `api1Link: 'userspace-wire'` links api1 through the userspace wire instead of a veth pair. */
async function chaosMesh(t: TestContext, scenario: string, transport: 'h1' | 'h2', api1Link: 'veth' | 'userspace-wire' = 'veth'): Promise<ChaosMesh | undefined> {
  if (!(await requireNetns(t))) return undefined;
  const { dir, appFile } = await meshWorkDir(t, ['web', 'api']);
  const bed = await createHostBed(t, [{ name: 'web' }, { name: 'api1', link: api1Link }, { name: 'api2' }], { reachFromTest: true });
  const [web, api1, api2] = [bed.host('web'), bed.host('api1'), bed.host('api2')];
  const config = join(dir, 'mesh.yaml');
  await writeFile(config, meshYaml({ web, apiHosts: [api1, api2], transport }));
  const ledger = new Ledger(scenario);
  const apiSidecars: MycelProcess[] = [];
  for (const h of [api1, api2]) {
    ledger.watchApp((await startLedgerApp(h, appFile, h.name)).stdout!);
    apiSidecars.push(await startHostSidecar(bed, h, 'api', dir, ['--config', config]));
  }
  const webSidecar = await startHostSidecar(bed, web, 'web', dir, ['--config', config], WEB_BINDING);
  return { bed, web, api1, api2, webSidecar, apiSidecars, ledger, target: `${web.address}:${BINDING_PORT}` };
}

/**
 * Runs the load until `fault` is done and then `afterMs` more; returns the report, printed as a LEDGER line with
 * `extra` (which the fault may fill in) appended.
 */
async function underLoad(t: TestContext, m: ChaosMesh, fault: () => Promise<void>, afterMs: number, extra: Record<string, string | number> = {}): Promise<LedgerReport> {
  m.ledger.start({ target: m.target, rate: RATE, deadlineMs: DEADLINE_MS, maxDurationMs: 35_000 });
  // Warm up: both instances serve before the fault.
  await sleep(2000);
  await fault();
  await sleep(afterMs);
  await m.ledger.stop();
  const r = m.ledger.report();
  t.diagnostic(ledgerLine(r, extra));
  return r;
}

function assertBalanced(r: LedgerReport): void {
  assert.deepEqual(ledgerViolations(r), []);
  for (const reason of Object.keys(r.byReason)) assert.ok(FAILURE_REASONS.has(reason), `unexpected mesh error ${reason}: ${JSON.stringify(r.byReason)}`);
}

/** What the retry budget lets fail: the budget's share of the requests plus its floor per second of the fault. */
function budgetBound(r: LedgerReport, faultSeconds: number): number {
  // ratio 0.2 of the requests, 10 retries per second of the fault: what cannot be retried shows as failures.
  return Math.ceil(0.2 * r.sent + 10 * faultSeconds);
}

/** The retry budget bounds what an outage costs: failures at most the budget's share of the requests plus its floor. */
function assertWithinBudget(r: LedgerReport, faultSeconds: number): void {
  const bound = budgetBound(r, faultSeconds);
  assert.ok(r.failed <= bound, `${r.failed} failures, more than the retry budget explains (${bound}): ${JSON.stringify(r.byReason)}`);
}

test('an api host dies (every process SIGKILLed): callers stop sending to it and nothing is lost', { timeout: 90_000 }, async (t) => {
  const m = await chaosMesh(t, 'host-killed', 'h1');
  if (m === undefined) return;
  const r = await underLoad(t, m, async () => {
    killHost(m.api2);
    m.ledger.mark();
  }, 8000);
  assertBalanced(r);
  assertWithinBudget(r, 8);
  // The caller took api2 out (outlier detection or its failing health checks)...
  await m.webSidecar.waitForLog((l) => /ejected by outlier detection|failed its health checks/.test(String(l.msg)) && JSON.stringify(l).includes(m.api2.address), 10_000);
  // ...so that it recovered before the load ended: the last second of requests all succeeded.
  assert.ok(r.convergeMs !== null && r.convergeMs < 7000, `failures went on for ${r.convergeMs} ms after the kill`);
});

for (const transport of ['h2', 'h1'] as const) {
  const what = transport === 'h2' ? 'HTTP/2 keepalive closes the dead session' : 'pooled HTTP/1.1 connections time out per try';
  test(`a partition between the caller and one instance (transport ${transport}), then healed: ${what}, traffic comes back`, { timeout: 90_000 }, async (t) => {
    const m = await chaosMesh(t, `partition-${transport}`, transport);
    if (m === undefined) return;
    let api1AtHeal = 0;
    const r = await underLoad(t, m, async () => {
      await partition(m.web, m.api1);
      const cut = Date.now();
      if (transport === 'h2') {
        // The pooled session to api1 is open and silent now: the sidecar must notice it by its unanswered PINGs.
        const warned = await m.webSidecar.waitForLog((l) => l.msg === 'peer sidecar did not answer an HTTP/2 keepalive PING; connection closed' && String(l.peer).includes(m.api1.address), 15_000);
        t.diagnostic(`KEEPALIVE dead session noticed after ${Date.parse(String(warned.time)) - cut} ms (ping every 1 s, 1 s to answer)`);
        await sleep(3000);
      } else {
        await sleep(5000);
      }
      await heal(m.web, m.api1);
      m.ledger.mark();
      api1AtHeal = m.ledger.executedBy('api1').length;
    }, 8000);
    assertBalanced(r);
    // After the heal api1 serves again (its ejection ends, health checks pass).
    assert.ok(m.ledger.executedBy('api1').length > api1AtHeal, 'api1 served nothing after the heal');
    assert.ok(r.convergeMs !== null && r.convergeMs < 7000, `failures went on for ${r.convergeMs} ms after the heal`);
  });
}

const NETEM = { delayMs: 40, jitterMs: 20, lossPercent: 5, reorderPercent: 25 };
const NETEM_SECONDS = 6;

for (const transport of ['h1', 'h2'] as const) {
  test(`packet loss, delay and reordering on an instance's link (transport ${transport}; tc netem, else the userspace wire): nothing is lost`, { timeout: 90_000 }, async (t) => {
    if (!(await requireNetns(t))) return;
    // netem is a kernel feature (sch_netem), not a package: where it is missing, api1's link is the userspace wire.
    const probe = await createHostBed(t, [{ name: 'probe' }]);
    const missing = await netemUnavailable(probe.host('probe'));
    await probe.close();
    if (missing !== null && !(await requireUserspaceWire(t))) return;
    const m = await chaosMesh(t, `netem-${transport}`, transport, missing === null ? 'veth' : 'userspace-wire');
    if (m === undefined) return;
    const wire = m.api1.wire;
    let impl: NetemImpl | undefined;
    let during: WireStats | undefined;
    let clearedAt = 0;
    const extra: Record<string, string | number> = {};
    const r = await underLoad(t, m, async () => {
      const before = await wire?.counters();
      impl = await setNetem(m.api1, NETEM);
      await sleep(NETEM_SECONDS * 1000);
      await clearNetem(m.api1);
      clearedAt = Date.now();
      m.ledger.mark(clearedAt);
      if (wire !== null && before !== undefined) during = countersSince(await wire.counters(), before);
      extra.netem = impl;
    }, 4000, extra);
    const bound = budgetBound(r, NETEM_SECONDS);
    // A slow, lossy link is not a dead peer: how often the keepalive closed a session anyway (h2), for the note.
    const keepaliveClosed = m.webSidecar.records().filter((l) => l.msg === 'peer sidecar did not answer an HTTP/2 keepalive PING; connection closed').length;
    t.diagnostic(`NETEM impl=${impl} on api1's egress: delay ${NETEM.delayMs} ms +- ${NETEM.jitterMs} ms, loss ${NETEM.lossPercent} %, reorder ${NETEM.reorderPercent} % for ${NETEM_SECONDS} s; failures ${r.failed} <= budget bound ${bound} (0.2 x ${r.sent} sent + 10/s x ${NETEM_SECONDS} s); keepalive closures ${keepaliveClosed}${during !== undefined ? `; wire ${wireCountersLine(during)}` : ''}`);
    assertBalanced(r);
    assertWithinBudget(r, NETEM_SECONDS);
    // Clean again after the clear: a request may still fail within its 4 s timeout, none started 2 s later does.
    assert.ok(r.convergeMs !== null && r.convergeMs < 5000, `failures went on for ${r.convergeMs} ms after clearing`);
    assert.equal(m.ledger.count('failed', clearedAt + 2000), 0, 'requests started 2 s after clearing failed');
    assert.ok(m.ledger.executedBy('api1').length > 0, 'api1 served through its impaired link');
    if (impl === 'userspace-wire') {
      // The impairment really happened to api1's traffic: frames dropped and sent out of order on its egress.
      assert.ok(during !== undefined && during.egress.dropped > 0 && during.egress.reordered > 0 && during.egress.outOfOrder > 0, `the wire did not impair: ${during !== undefined ? wireCountersLine(during) : 'no counters'}`);
    }
  });
}

for (const transport of ['h1', 'h2'] as const) {
  test(`a sidecar SIGTERMed under load (transport ${transport}): every request it accepted succeeds`, { timeout: 90_000 }, async (t) => {
    const m = await chaosMesh(t, `sidecar-sigterm-${transport}`, transport);
    if (m === undefined) return;
    let before = 0;
    const r = await underLoad(t, m, async () => {
      before = m.ledger.executedBy('api2').length;
      m.ledger.mark();
      const exit = await m.apiSidecars[1]!.stop('SIGTERM');
      assert.equal(exit.code, 0, 'the sidecar drained and exited cleanly');
    }, 4000);
    assertBalanced(r);
    assert.ok(before > 0, 'api2 served before the drain');
    // Requests api2's sidecar took finished; those it refused while draining were retried elsewhere: none failed.
    assert.equal(r.failed, 0, `failures during a graceful drain: ${r.failedSamples.join('; ')}`);
  });
}
