// The userspace wire (the stand-in for tc netem): a bed host linked through it reaches the others, round trips take at
// least the delay it adds, its losses show both in what arrives and in its counters, a TCP transfer through loss,
// jitter and reordering arrives intact, and the bed's teardown (or the next bed's, after a crash) leaves neither its
// process nor its devices behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { clearNetem, netemUnavailable, setNetem } from './chaos.js';
import { createHostBed, removeLeftovers, requireNetns, type Host } from './netns-bed.js';
import { countersSince, requireUserspaceWire, wireCountersLine, type UserspaceWire } from './userspace-wire.js';

/** In `b`: a TCP echo on 7001, a TCP sink on 7002 that answers the SHA-256 and length of what it got, a UDP echo on 7003. */
const SERVERS = `
const net = require('node:net'), dgram = require('node:dgram'), { createHash } = require('node:crypto');
net.createServer((s) => s.pipe(s)).listen(7001, '0.0.0.0');
net.createServer({ allowHalfOpen: true }, (s) => {
  const h = createHash('sha256'); let n = 0;
  s.on('data', (c) => { h.update(c); n += c.length; });
  s.on('end', () => s.end(h.digest('hex') + ' ' + n));
}).listen(7002, '0.0.0.0');
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(m, r.port, r.address));
u.bind(7003, '0.0.0.0', () => console.log('listening'));
`;

/** Round trips of one byte over one connection: prints their durations in ms as JSON. */
const RTT_CLIENT = `
const s = require('node:net').connect(7001, process.argv[1]);
const n = Number(process.argv[2]), times = [];
let t0 = 0;
s.on('connect', () => { t0 = performance.now(); s.write('x'); });
s.on('data', () => {
  times.push(performance.now() - t0);
  if (times.length >= n) { console.log(JSON.stringify(times)); process.exit(0); }
  t0 = performance.now(); s.write('x');
});
s.on('error', (e) => { console.log('error ' + e.code); process.exit(3); });
setTimeout(() => { console.log('timeout'); process.exit(4); }, 20000);
`;

/** Sends N datagrams 2 ms apart, waits a second, prints how many came back. */
const UDP_CLIENT = `
const u = require('node:dgram').createSocket('udp4');
const n = Number(process.argv[2]); let back = 0;
u.on('message', () => back++);
let i = 0;
const tick = setInterval(() => {
  u.send(Buffer.from(String(i)), 7003, process.argv[1]);
  if (++i >= n) { clearInterval(tick); setTimeout(() => { console.log(back); process.exit(0); }, 1000); }
}, 2);
`;

/** Sends the bytes read on stdin to the sink and prints its answer. */
const SINK_CLIENT = `
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const s = require('node:net').connect({ port: 7002, host: process.argv[1], allowHalfOpen: true });
  let answer = '';
  s.on('data', (c) => answer += c);
  s.on('end', () => { console.log(answer); process.exit(0); });
  s.on('error', (e) => { console.log('error ' + e.code); process.exit(3); });
  s.end(Buffer.from(Buffer.concat(chunks).toString(), 'base64'));
});
setTimeout(() => { console.log('timeout'); process.exit(4); }, 60000);
`;

/**
 * Waits (up to 5 s) until no network device is named with `prefix`: the kernel dismantles a deleted namespace, and the
 * veth ends in it, in the background. Returns the lines of those still there.
 */
async function devicesGone(prefix: string): Promise<string> {
  let left = '';
  for (let i = 0; i < 50; i++) {
    left = (spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '').split('\n').filter((l) => l.includes(prefix)).join('\n');
    if (left === '') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

async function rtts(a: Host, b: Host, n: number): Promise<number[]> {
  const r = await a.exec(process.execPath, ['-e', RTT_CLIENT, b.address, String(n)]);
  assert.match(r.stdout, /^\[/, `round trips from ${a.name}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout) as number[];
}

test('a host linked through the userspace wire: delay, loss and reordering really happen, and TCP still delivers', { timeout: 120_000 }, async (t) => {
  if (!(await requireNetns(t)) || !(await requireUserspaceWire(t))) return;
  const bed = await createHostBed(t, [{ name: 'a', link: 'userspace-wire' }, { name: 'b' }]);
  const [a, b] = [bed.host('a'), bed.host('b')];
  assert.equal(b.wire, null, 'a veth host has no wire');
  const wire: UserspaceWire = a.wire!;
  assert.ok(wire !== null, 'the wire host has its wire');
  // The host's side of the wire is its eth0, with its address; the other side is a port of the bridge.
  assert.match((await a.exec('ip', ['-o', 'addr', 'show', 'dev', a.dev])).stdout, new RegExp(`inet ${a.address.replaceAll('.', '\\.')}/24`));
  assert.match(spawnSync('ip', ['-o', 'link', 'show', wire.bridgeTap], { encoding: 'utf8' }).stdout, new RegExp(`master ${bed.prefix}br`));

  const server = b.spawn(process.execPath, ['-e', SERVERS]);
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', (code) => reject(new Error(`servers in b exited ${code}`)));
  });

  await t.test('round trips take at least the delay added, each way', async (tt) => {
    const plain = await rtts(a, b, 5);
    await wire.set({ delayMs: 100 }, 'egress');
    const oneWay = await rtts(a, b, 5);
    await wire.set({ delayMs: 100 }, 'both');
    const twoWays = await rtts(a, b, 5);
    await wire.clear();
    tt.diagnostic(`RTT ms: no impairment ${plain.map(Math.round).join(',')}; 100 ms egress ${oneWay.map(Math.round).join(',')}; 100 ms both ways ${twoWays.map(Math.round).join(',')}`);
    // Lower bounds only: the wire holds every frame for the delay, so no round trip can be shorter.
    assert.ok(Math.min(...oneWay) >= 99, `a round trip faster than the 100 ms delay: ${oneWay.join(', ')}`);
    assert.ok(Math.min(...twoWays) >= 199, `a round trip faster than 2 x 100 ms: ${twoWays.join(', ')}`);
  });

  await t.test('losses: what does not come back is what the wire counted as dropped', async (tt) => {
    const before = await wire.counters();
    await wire.set({ lossPercent: 30 }, 'egress');
    const back = Number((await a.exec(process.execPath, ['-e', UDP_CLIENT, b.address, '200'])).stdout.trim());
    await wire.clear();
    const d = countersSince(await wire.counters(), before);
    tt.diagnostic(`UDP: 200 sent, ${back} echoed; wire ${wireCountersLine(d)}`);
    assert.ok(back > 0 && back < 200, `${back} of 200 datagrams came back through 30 % loss`);
    // Each datagram lost went out of a's egress and was dropped there (the counter may include other frames too).
    assert.ok(d.egress.dropped >= 200 - back, `${200 - back} datagrams missing but only ${d.egress.dropped} frames dropped`);
    assert.equal(d.ingress.dropped, 0, 'no loss was set on ingress');
  });

  await t.test('a TCP transfer through loss, jitter and reordering arrives intact', async (tt) => {
    const before = await wire.counters();
    await wire.set({ delayMs: 20, jitterMs: 10, lossPercent: 2, reorderPercent: 25 }, 'both');
    const data = randomBytes(1 << 20);
    const r = await a.exec(process.execPath, ['-e', SINK_CLIENT, b.address], data.toString('base64'), 90_000);
    await wire.clear();
    const d = countersSince(await wire.counters(), before);
    tt.diagnostic(`TCP 1 MiB: ${r.stdout.trim()}; wire ${wireCountersLine(d)}`);
    assert.equal(r.stdout.trim(), `${createHash('sha256').update(data).digest('hex')} ${data.length}`);
    assert.ok(d.egress.dropped > 0 && d.egress.reordered > 0 && d.egress.outOfOrder > 0, `the data direction was not impaired: ${wireCountersLine(d)}`);
    assert.ok(d.ingress.passed > 0, 'acknowledgements came back through the wire');
  });

  await t.test('bad settings are refused; setNetem uses the wire where the kernel has no netem', async () => {
    await assert.rejects(wire.set({ reorderPercent: 10 }), /reordering needs a delay/);
    await assert.rejects(wire.set({ lossPercent: 120 }), /lossPercent/);
    if ((await netemUnavailable(a)) === null) return;
    assert.equal(await setNetem(a, { delayMs: 10, lossPercent: 1 }), 'userspace-wire');
    await clearNetem(a);
    await assert.rejects(setNetem(b, { delayMs: 10 }), /no userspace wire/);
  });

  const pid = wire.pid;
  await bed.close();
  assert.throws(() => process.kill(pid, 0), 'the wire process is gone');
  assert.equal(await devicesGone(bed.prefix), '', 'no device of the bed is left');
});

/** A test process that builds a bed with a wire host, prints its prefix and the wire's PID, then waits to be killed. */
const CRASHING_OWNER = `
const { createHostBed } = await import(process.argv[1]);
const bed = await createHostBed({ after() {} }, [{ name: 'w', link: 'userspace-wire' }, { name: 'v' }]);
console.log(JSON.stringify({ prefix: bed.prefix, wirePid: bed.host('w').wire.pid }));
setTimeout(() => {}, 60000);
`;

test('a test process killed outright: its wire exits with it, and the next bed removes the rest', { timeout: 60_000 }, async (t) => {
  if (!(await requireNetns(t)) || !(await requireUserspaceWire(t))) return;
  const bedModule = new URL('./netns-bed.js', import.meta.url).href;
  const owner = spawn(process.execPath, ['--input-type=module', '-e', CRASHING_OWNER, bedModule], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => owner.kill('SIGKILL'));
  const line = await new Promise<string>((resolve, reject) => {
    owner.stdout.setEncoding('utf8').once('data', (d: string) => resolve(d));
    owner.once('exit', (code) => reject(new Error(`the owner exited (${code}) before its bed was up`)));
  });
  const { prefix, wirePid } = JSON.parse(line) as { prefix: string; wirePid: number };
  // Killed and reaped (a zombie's PID still answers kill 0, and would look like a live owner).
  const reaped = new Promise((r) => owner.once('exit', r));
  owner.kill('SIGKILL');
  await reaped;
  // Its stdin closed with its owner: the wire exits by itself, and its TAPs vanish with it.
  for (let i = 0; i < 100 && existsSync(`/proc/${wirePid}`); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(existsSync(`/proc/${wirePid}`), false, 'the wire outlived its killed owner');
  // What a new bed does first (another test process's bed may have done it already: the end state is what counts).
  const removed = removeLeftovers();
  t.diagnostic(`removed: ${removed.join(', ') || 'nothing left to remove'}`);
  assert.equal(await devicesGone(prefix), '', 'no device of the killed bed is left');
  assert.doesNotMatch(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout, new RegExp(prefix));
});
