// Network faults between hosts of a bed (netns-bed.ts), for chaos tests: delay, jitter, loss and reordering on a
// host's link (tc netem, or the host's userspace wire where the kernel lacks netem), random packet loss with iptables,
// and partitions (iptables DROP both ways between two hosts) that can be healed.

import { killNamespacePids, type Host } from './netns-bed.js';
import type { Impairment } from './userspace-wire.js';

/** Delay (plus or minus jitter), loss and reordering, in tc netem's terms. */
export type Netem = Impairment;

/** Which implementation setNetem used. */
export type NetemImpl = 'tc-netem' | 'userspace-wire';

async function must(host: Host, cmd: string, args: string[]): Promise<void> {
  const r = await host.exec(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${host.name} failed (${r.code}): ${r.stderr.trim()}`);
}

/**
 * Whether the kernel has netem (sch_netem): some minimal VM kernels lack it. Returns null when it does, else why not.
 */
export async function netemUnavailable(host: Host): Promise<string | null> {
  // A kernel feature: probed once per test process.
  netemProbe ??= probeNetem(host);
  return netemProbe;
}

let netemProbe: Promise<string | null> | undefined;

async function probeNetem(host: Host): Promise<string | null> {
  const r = await host.exec('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
  if (r.code === 0) {
    await host.exec('tc', ['qdisc', 'del', 'dev', 'lo', 'root']);
    return null;
  }
  return `tc netem does not work here: ${r.stderr.trim()} (the kernel needs sch_netem: modprobe sch_netem)`;
}

/**
 * Delays, drops and reorders what `host` sends (its egress); replaces an earlier setting. Uses tc netem where the
 * kernel has it, else the host's userspace wire (a bed host with `link: 'userspace-wire'`); throws when neither
 * applies. Returns which one it used.
 */
export async function setNetem(host: Host, n: Netem): Promise<NetemImpl> {
  if (n.reorderPercent !== undefined && n.reorderPercent > 0 && n.delayMs === undefined) throw new Error('netem reordering needs a delay');
  const missing = await netemUnavailable(host);
  if (missing === null) {
    await tcNetem(host, n);
    return 'tc-netem';
  }
  if (host.wire !== null) {
    await host.wire.set(n, 'egress');
    return 'userspace-wire';
  }
  throw new Error(`cannot impair ${host.name}'s link: ${missing}; and the host has no userspace wire (create it with link: 'userspace-wire')`);
}

async function tcNetem(host: Host, n: Netem): Promise<void> {
  const args = ['qdisc', 'replace', 'dev', host.dev, 'root', 'netem'];
  if (n.delayMs !== undefined) args.push('delay', `${n.delayMs}ms`, ...(n.jitterMs !== undefined ? [`${n.jitterMs}ms`] : []));
  if (n.lossPercent !== undefined) args.push('loss', `${n.lossPercent}%`);
  if (n.reorderPercent !== undefined) args.push('reorder', `${n.reorderPercent}%`);
  await must(host, 'tc', args);
}

/** Undoes setNetem: the host's wire stops impairing, and any netem qdisc on its link goes. */
export async function clearNetem(host: Host): Promise<void> {
  if (host.wire !== null) await host.wire.clear();
  const r = await host.exec('tc', ['qdisc', 'del', 'dev', host.dev, 'root']);
  // "No such file or directory" / "Cannot delete qdisc with handle of zero": there was none.
  if (r.code !== 0 && !/No such file|handle of zero|Invalid handle/i.test(r.stderr)) throw new Error(`tc qdisc del in ${host.name}: ${r.stderr.trim()}`);
}

/** The netem line `tc qdisc show` prints for the host's link, or null. */
export async function showNetem(host: Host): Promise<string | null> {
  const r = await host.exec('tc', ['qdisc', 'show', 'dev', host.dev]);
  return r.stdout.split('\n').find((l) => l.includes('netem')) ?? null;
}

// A chain of our own in the filter table (not MYCEL_*: those belong to the sidecar's transparent mode).
const CHAIN = 'BED_PARTITION';

async function dropRules(host: Host, peer: Host, op: '-A' | '-D'): Promise<void> {
  if (op === '-A') {
    // Create the chain and hook it in once; both are no-ops (errors ignored) when done already.
    await host.exec('iptables', ['-w', '5', '-N', CHAIN]);
    for (const hook of ['INPUT', 'OUTPUT']) {
      const has = await host.exec('iptables', ['-w', '5', '-C', hook, '-j', CHAIN]);
      if (has.code !== 0) await must(host, 'iptables', ['-w', '5', '-I', hook, '-j', CHAIN]);
    }
  }
  await must(host, 'iptables', ['-w', '5', op, CHAIN, '-s', peer.address, '-j', 'DROP']);
  await must(host, 'iptables', ['-w', '5', op, CHAIN, '-d', peer.address, '-j', 'DROP']);
}

/** Cuts `a` and `b` off from each other (packets dropped silently both ways, as a failed link would). */
export async function partition(a: Host, b: Host): Promise<void> {
  await dropRules(a, b, '-A');
  await dropRules(b, a, '-A');
}

/** Undoes `partition(a, b)`. */
export async function heal(a: Host, b: Host): Promise<void> {
  await dropRules(a, b, '-D');
  await dropRules(b, a, '-D');
}

// Random loss without netem: the iptables `statistic` match drops each packet on its own with a probability. A chain
// of our own, hooked into INPUT (-i dev) and OUTPUT (-o dev) of the host's namespace, so that both directions of the
// link lose packets; it lives in the namespace, so the bed's teardown (deleting the namespace) removes it as well.
const LOSS_CHAIN = 'BED_LOSS';
const LOSS_HOOKS = [['INPUT', '-i'], ['OUTPUT', '-o']] as const;

/**
 * Drops `percent` % of the packets the host sends and of those it receives on its link (each packet independently);
 * replaces an earlier setting. Unlike netem it adds no delay and needs only iptables' statistic match.
 */
export async function setLoss(host: Host, percent: number): Promise<void> {
  if (!(percent > 0 && percent <= 100)) throw new Error(`loss must be in (0, 100] percent, not ${percent}`);
  // Created once (an error when it exists is expected), emptied, then hooked in where it is not yet.
  await host.exec('iptables', ['-w', '5', '-N', LOSS_CHAIN]);
  await must(host, 'iptables', ['-w', '5', '-F', LOSS_CHAIN]);
  await must(host, 'iptables', ['-w', '5', '-A', LOSS_CHAIN, '-m', 'statistic', '--mode', 'random', '--probability', String(percent / 100), '-j', 'DROP']);
  for (const [hook, dir] of LOSS_HOOKS) {
    const rule = [hook, dir, host.dev, '-j', LOSS_CHAIN];
    if ((await host.exec('iptables', ['-w', '5', '-C', ...rule])).code !== 0) await must(host, 'iptables', ['-w', '5', '-I', ...rule]);
  }
}

/** Undoes setLoss (nothing to do when there was none). */
export async function clearLoss(host: Host): Promise<void> {
  for (const [hook, dir] of LOSS_HOOKS) {
    const rule = [hook, dir, host.dev, '-j', LOSS_CHAIN];
    if ((await host.exec('iptables', ['-w', '5', '-C', ...rule])).code === 0) await must(host, 'iptables', ['-w', '5', '-D', ...rule]);
  }
  if ((await host.exec('iptables', ['-w', '5', '-F', LOSS_CHAIN])).code === 0) await must(host, 'iptables', ['-w', '5', '-X', LOSS_CHAIN]);
}

/** The loss set on the host's link, in percent (from the rule iptables lists), or null. */
export async function showLoss(host: Host): Promise<number | null> {
  const r = await host.exec('iptables', ['-w', '5', '-S', LOSS_CHAIN]);
  const m = /--probability (\S+)/.exec(r.stdout);
  return r.code === 0 && m !== null ? Math.round(Number(m[1]) * 10_000) / 100 : null;
}

/** The host dies: every process in its namespace is SIGKILLed at once (its addresses stay, so peers get RSTs). */
export function killHost(host: Host): void {
  killNamespacePids(host.ns);
}
