// The test bed itself: hosts reach each other by name across the bridge, faults apply and heal, and teardown (also
// of a crashed run's leftovers) leaves nothing behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { clearLoss, clearNetem, heal, netemUnavailable, partition, setLoss, setNetem, showLoss, showNetem } from './chaos.js';
import { startDelayRelay } from './delay-relay.js';
import { createHostBed, removeLeftovers, requireNetns, type Host } from './netns-bed.js';

const SERVER = `require('node:net').createServer((s) => s.end('hello from ' + require('node:os').hostname())).listen(7000, '0.0.0.0', () => console.log('listening'))`;
const CLIENT = `const s = require('node:net').connect(7000, process.argv[1]); let d = ''; s.on('data', (c) => d += c); s.on('end', () => { console.log(d); process.exit(0) }); s.on('error', (e) => { console.log('error ' + e.code); process.exit(3) }); setTimeout(() => { console.log('timeout'); process.exit(4) }, Number(process.argv[2]))`;

function netnsList(): string {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
}

async function startServer(h: Host): Promise<void> {
  const child = h.spawn(process.execPath, ['-e', SERVER]);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`server in ${h.name} exited ${code}`)));
  });
}

test('hosts reach each other by name, faults apply and heal, and close removes everything', async (t) => {
  if (!(await requireNetns(t))) return;
  const bed = await createHostBed(t, [{ name: 'alpha', aliases: ['svc-a'] }, { name: 'beta' }]);
  const [a, b] = [bed.host('alpha'), bed.host('beta')];
  assert.match(netnsList(), new RegExp(`${bed.prefix}-alpha`));
  assert.equal((await a.exec('getent', ['hosts', 'beta'])).stdout.trim().split(/\s+/)[0], b.address);
  assert.equal((await b.exec('getent', ['hosts', 'svc-a'])).stdout.trim().split(/\s+/)[0], a.address);
  // No route out of the bed: only the subnet is reachable.
  assert.doesNotMatch((await a.exec('ip', ['route'])).stdout, /default/);

  await startServer(b);
  const reply = await a.exec(process.execPath, ['-e', CLIENT, 'beta', '10000']);
  assert.equal(reply.stdout.trim(), 'hello from ' + (await b.exec('hostname', [])).stdout.trim());

  await t.test('netem on a link', async (tt) => {
    const why = await netemUnavailable(a);
    if (why !== null) {
      tt.skip(why);
      return;
    }
    await setNetem(a, { delayMs: 30, jitterMs: 5, lossPercent: 1 });
    assert.match((await showNetem(a)) ?? '', /delay 30ms\s+5ms loss 1%/);
    await clearNetem(a);
    assert.equal(await showNetem(a), null);
  });

  await t.test('random loss on a link with iptables (works without netem)', async () => {
    await setLoss(a, 5);
    assert.equal(await showLoss(a), 5);
    // Both directions of the link pass the loss chain.
    assert.match((await a.exec('iptables', ['-S', 'INPUT'])).stdout, new RegExp(`-i ${a.dev} -j BED_LOSS`));
    assert.match((await a.exec('iptables', ['-S', 'OUTPUT'])).stdout, new RegExp(`-o ${a.dev} -j BED_LOSS`));
    // A new setting replaces the old one; at 100 % nothing gets through.
    await setLoss(a, 100);
    assert.equal(await showLoss(a), 100);
    assert.equal((await a.exec(process.execPath, ['-e', CLIENT, 'beta', '1500'])).stdout.trim(), 'timeout');
    await clearLoss(a);
    assert.equal(await showLoss(a), null);
    await clearLoss(a);
    assert.match((await a.exec(process.execPath, ['-e', CLIENT, 'beta', '10000'])).stdout, /^hello from/);
  });

  await t.test('a delaying TCP relay in front of a port (works without netem)', async () => {
    const relay = await startDelayRelay(b, 7000, 7100);
    await relay.setDelay(500);
    const start = Date.now();
    const slow = await a.exec(process.execPath, ['-e', CLIENT, 'beta', '10000']);
    const took = Date.now() - start;
    assert.match(slow.stdout, /^hello from/, 'the reply passes through the relay whole');
    // A lower bound only: the reply cannot come back sooner than the relay holds it.
    assert.ok(took >= 500, `the reply came back after ${took} ms, before the 500 ms delay`);
    await relay.stop();
    assert.doesNotMatch((await b.exec('iptables', ['-t', 'nat', '-S', 'PREROUTING'])).stdout, /REDIRECT/);
    assert.match((await a.exec(process.execPath, ['-e', CLIENT, 'beta', '10000'])).stdout, /^hello from/);
  });

  await partition(a, b);
  const cut = await a.exec(process.execPath, ['-e', CLIENT, 'beta', '1500']);
  assert.equal(cut.stdout.trim(), 'timeout', 'a partition drops packets silently');
  await heal(a, b);
  assert.match((await a.exec(process.execPath, ['-e', CLIENT, 'beta', '10000'])).stdout, /^hello from/);

  await bed.close();
  assert.doesNotMatch(netnsList(), new RegExp(bed.prefix));
  assert.equal(existsSync(`/etc/netns/${a.ns}`), false);
  assert.equal(spawnSync('ip', ['link', 'show', `${bed.prefix}br`]).status !== 0, true, 'the bridge is gone');
});

test('leftovers of a run whose process is gone are removed by the next bed', async (t) => {
  if (!(await requireNetns(t))) return;
  // A process that exits at once: its PID names a crashed run's namespace.
  const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const pid = Number(dead.stdout.trim());
  const ns = `mt${pid.toString(36)}_0-ghost`;
  const link = `mt${pid.toString(36)}_0br`;
  assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  assert.equal(spawnSync('ip', ['link', 'add', link, 'type', 'bridge']).status, 0);
  const removed = removeLeftovers();
  assert.ok(removed.includes(ns) && removed.includes(link), `removed ${removed.join(', ')}`);
  assert.doesNotMatch(netnsList(), new RegExp(ns));
});
