// A test bed of N "hosts" on one machine: Linux network namespaces on a private bridge (a 10.x.y.0/24 subnet the
// bed picks, no route out), each with a hosts file so names resolve, processes run inside them and tracked by PID,
// and everything removed at the end - also after a crash: names carry the owning PID, and the next bed removes
// leftovers whose owner is gone. Needs root, iproute2 and iptables (requireNetns skips or fails without them).
// A host's link is a veth pair into the bridge, or a userspace wire (userspace-wire.ts) that can delay, drop and
// reorder frames where the kernel has no netem.

import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { originalDstUnavailable } from '../../src/proxy/transparent/original-dst.js';
import { requirePackage, run } from '../helpers/http.js';
import { startUserspaceWire, type UserspaceWire } from './userspace-wire.js';

export interface HostSpec {
  /** Short name: the host is reachable as this name from every host (letters, digits, dashes). */
  name: string;
  /** More names for this host's address (e.g. the services it runs). */
  aliases?: string[];
  /**
   * How the host joins the bridge: a veth pair (the default), or a userspace wire, two TAP devices with a Python
   * process copying frames between them that `wire.set` (or chaos.ts's setNetem) can delay, drop and reorder. The
   * wire needs python3 and /dev/net/tun (`requireUserspaceWire`).
   */
  link?: 'veth' | 'userspace-wire';
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Host {
  readonly name: string;
  /** The network namespace (`ip netns exec <ns> ...`). */
  readonly ns: string;
  /** Its address on the bed's subnet. */
  readonly address: string;
  /** Interface inside the namespace (for tc). */
  readonly dev: string;
  /** The userspace wire behind `dev` for a host with `link: 'userspace-wire'`, else null. */
  readonly wire: UserspaceWire | null;
  /** Runs a command inside the namespace to completion; never throws on a non-zero exit. */
  exec(cmd: string, args: string[], input?: string, timeoutMs?: number): Promise<ExecResult>;
  /** Starts a long-running process inside the namespace; the bed kills it (by PID) at the end if it still runs. */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** The command prefix that runs something in this namespace, for spawners of their own. */
  readonly prefix: readonly string[];
}

export interface BedOptions {
  /**
   * Give the test process itself an address on the bridge (.254), so that it can reach the hosts' addresses directly
   * (a load generator, an API client) without running inside a namespace. Still no route out of the bed.
   */
  reachFromTest?: boolean;
}

export interface HostBed {
  /** Prefix of every name the bed created (namespaces, links). */
  readonly prefix: string;
  /** The test process's address on the bridge with `reachFromTest`, else null. */
  readonly testAddress: string | null;
  /** The bed's subnet, e.g. 10.123.45.0/24. */
  readonly subnet: string;
  readonly hosts: readonly Host[];
  host(name: string): Host;
  /** Adds `pid` to what close() stops (for processes started in a namespace by other means). */
  track(pid: number): void;
  close(): Promise<void>;
}

const NAME_RE = /^mt([0-9a-z]+)_([0-9a-z]+)/;
let counter = 0;

/** Skips the test (or fails it under CI=true) where the bed cannot work: no root, no ip, no iptables. */
export async function requireNetns(t: { skip(msg: string): void }): Promise<boolean> {
  if (!(await requirePackage(t, 'ip', 'iproute2'))) return false;
  if (!(await requirePackage(t, 'iptables', 'iptables'))) return false;
  if (process.getuid?.() !== 0) {
    const msg = 'needs root (network namespaces, iptables)';
    if (process.env.CI === 'true') throw new Error(`CI=true: ${msg}`);
    t.skip(msg);
    return false;
  }
  return true;
}

/** requireNetns, and the SO_ORIGINAL_DST addon built (transparent mode): skips without it, fails under CI=true. */
export async function requireTransparent(t: { skip(msg: string): void }): Promise<boolean> {
  if (!(await requireNetns(t))) return false;
  const missing = originalDstUnavailable();
  if (missing === null) return true;
  if (process.env.CI === 'true') throw missing;
  t.skip(`the SO_ORIGINAL_DST addon is not built: ${missing.message}`);
  return false;
}

function ipSync(args: string[], input?: string): { code: number | null; stderr: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 15_000, ...(input !== undefined ? { input } : {}) });
  return { code: r.status, stderr: (r.stderr ?? '') + (r.error?.message ?? '') };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces, links and hosts files named by a bed whose owning process is gone (a crashed run). */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  const owned = (name: string) => {
    const m = NAME_RE.exec(name);
    return m !== null && !alive(parseInt(m[1]!, 36));
  };
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of netns.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    if (ns === '' || !owned(ns)) continue;
    killNamespacePids(ns);
    ipSync(['netns', 'del', ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    removed.push(ns);
  }
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of links.split('\n')) {
    const m = /^\d+: ([^:@]+)[:@]/.exec(line);
    if (m === null || !owned(m[1]!)) continue;
    ipSync(['link', 'del', m[1]!]);
    removed.push(m[1]!);
  }
  return removed;
}

/** SIGKILLs every process inside the namespace (the bed's end, or a chaos test killing a whole host). */
export function killNamespacePids(ns: string): void {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  for (const p of (r.stdout ?? '').split('\n')) {
    const pid = Number(p);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
  }
}

/**
 * Creates the hosts (in the given order they get .1, .2, ...), a hosts file in each naming every host and alias,
 * and registers the teardown with `t.after` and a process exit hook.
 */
export async function createHostBed(t: { after(fn: () => unknown): void }, specs: readonly HostSpec[], opts: BedOptions = {}): Promise<HostBed> {
  if (specs.length === 0 || specs.length > 200) throw new Error('a bed has 1..200 hosts');
  removeLeftovers();
  const prefix = `mt${process.pid.toString(36)}_${(counter++).toString(36)}`;
  const bridge = `${prefix}br`;
  const net3 = `10.${randomInt(100, 200)}.${randomInt(0, 256)}`;
  const subnet = `${net3}.0/24`;
  const pids = new Set<number>();
  const children = new Set<ChildProcess>();
  const names = new Set<string>();
  /** Userspace wires by host index; stopped before the namespaces go. */
  const wires = new Map<number, UserspaceWire>();

  const hosts: Host[] = specs.map((s, i) => {
    if (!/^[a-z][-a-z0-9]{0,30}$/.test(s.name) || names.has(s.name)) throw new Error(`bad or duplicate host name "${s.name}"`);
    names.add(s.name);
    const ns = `${prefix}-${s.name}`;
    const prefixCmd = ['ip', 'netns', 'exec', ns];
    return {
      name: s.name,
      ns,
      address: `${net3}.${i + 1}`,
      dev: 'eth0',
      get wire() {
        return wires.get(i) ?? null;
      },
      prefix: prefixCmd,
      exec: (cmd, args, input, timeoutMs) => run('ip', ['netns', 'exec', ns, cmd, ...args], input, timeoutMs),
      spawn(cmd, args, opts = {}) {
        // `ip netns exec` execs the command in place, so the child's PID is the command's.
        const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
        if (child.pid !== undefined) pids.add(child.pid);
        children.add(child);
        child.once('exit', () => {
          if (child.pid !== undefined) pids.delete(child.pid);
          children.delete(child);
        });
        return child;
      },
    };
  });

  let closed = false;
  const teardownSync = (): void => {
    if (closed) return;
    closed = true;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* exited */
      }
    }
    // A wire's TAPs vanish with its process; deleting the bridge side also cuts a wire that did not die yet.
    for (const w of wires.values()) w.kill();
    for (const h of hosts) {
      killNamespacePids(h.ns);
      ipSync(['netns', 'del', h.ns]);
      rmSync(`/etc/netns/${h.ns}`, { recursive: true, force: true });
    }
    for (const w of wires.values()) ipSync(['link', 'del', w.bridgeTap]);
    ipSync(['link', 'del', bridge]);
  };
  process.once('exit', teardownSync);

  // Wires first: each creates its two TAPs (in the root namespace, where their fds are opened).
  for (let i = 0; i < specs.length; i++) {
    if (specs[i]!.link !== 'userspace-wire') continue;
    try {
      wires.set(i, await startUserspaceWire(`${prefix}t${i.toString(36)}`, `${prefix}u${i.toString(36)}`));
    } catch (err) {
      teardownSync();
      throw err;
    }
  }
  // One `ip -batch` for the topology (a bridge, and per host a namespace with its link: a veth pair into the bridge,
  // or a wire's TAP moved into the namespace, its fd staying attached, and its other TAP on the bridge), then one per
  // namespace for its addresses.
  const batch = [`link add ${bridge} type bridge`, `link set ${bridge} up`];
  const inner: string[] = [];
  hosts.forEach((h, i) => {
    batch.push(`netns add ${h.ns}`);
    const wire = wires.get(i);
    if (wire !== undefined) {
      inner.push(wire.hostTap);
      batch.push(`link set ${wire.hostTap} netns ${h.ns}`, `link set ${wire.bridgeTap} master ${bridge} up`);
    } else {
      const veth = `${prefix}v${i.toString(36)}`;
      inner.push(`${veth}p`);
      batch.push(`link add ${veth} type veth peer name ${veth}p`, `link set ${veth}p netns ${h.ns}`, `link set ${veth} master ${bridge} up`);
    }
  });
  let r = ipSync(['-batch', '-'], batch.join('\n') + '\n');
  for (let i = 0; r.code === 0 && i < hosts.length; i++) {
    const h = hosts[i]!;
    r = ipSync(['-n', h.ns, '-batch', '-'], [`link set lo up`, `link set ${inner[i]!} name ${h.dev}`, `addr add ${h.address}/24 dev ${h.dev}`, `link set ${h.dev} up`].join('\n') + '\n');
  }
  const testAddress = opts.reachFromTest === true ? `${net3}.254` : null;
  if (r.code === 0 && testAddress !== null) r = ipSync(['addr', 'add', `${testAddress}/24`, 'dev', bridge]);
  if (r.code !== 0) {
    teardownSync();
    throw new Error(`cannot build the network namespaces: ${r.stderr.trim()}`);
  }
  // `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts for what it runs.
  const lines = ['127.0.0.1 localhost', '::1 localhost', ...hosts.map((h, i) => [h.address, h.name, ...(specs[i]!.aliases ?? [])].join(' '))].join('\n') + '\n';
  for (const h of hosts) {
    mkdirSync(`/etc/netns/${h.ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${h.ns}/hosts`, lines);
  }

  const bed: HostBed = {
    prefix,
    testAddress,
    subnet,
    hosts,
    host(name) {
      const h = hosts.find((x) => x.name === name);
      if (h === undefined) throw new Error(`no host "${name}" in the bed`);
      return h;
    },
    track(pid) {
      pids.add(pid);
    },
    async close() {
      if (closed) return;
      // Ask politely first, so that sidecars remove their own rules; then teardownSync kills what is left.
      const exits = [...children].filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise<void>((res) => {
        const timer = setTimeout(res, 3000);
        c.once('exit', () => {
          clearTimeout(timer);
          res();
        });
        c.kill('SIGTERM');
      }));
      await Promise.all(exits);
      // Wires last, so that draining sidecars still had their links; their TAPs are gone once they exited.
      await Promise.all([...wires.values()].map((w) => w.stop()));
      teardownSync();
      process.off('exit', teardownSync);
    },
  };
  t.after(() => bed.close());
  return bed;
}
