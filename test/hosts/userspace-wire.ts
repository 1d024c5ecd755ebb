// The test side of the userspace wire (userspace-wire.py): starts the Python process that copies frames between two
// TAP devices with delay, jitter, loss and reordering (a stand-in for tc netem where the kernel lacks sch_netem),
// sends it settings and reads its counters. The bed (netns-bed.ts) makes one TAP a host's link, the other a bridge port.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { requirePackage } from '../helpers/http.js';

/** The Python program, read from the source tree (dist/test/hosts/ -> test/hosts/). */
export const WIRE_SCRIPT = fileURLToPath(new URL('../../../test/hosts/userspace-wire.py', import.meta.url));

/** What a link does to the frames it carries (as tc netem's delay, loss and reorder). */
export interface Impairment {
  delayMs?: number;
  /** Each frame's delay is delayMs plus or minus up to this, uniformly (so jitter alone may reorder, as in netem). */
  jitterMs?: number;
  /** Percent of frames dropped. */
  lossPercent?: number;
  /** Percent of frames sent at once while the rest wait `delayMs` (needs a delay). */
  reorderPercent?: number;
}

/** `egress`: what the host sends; `ingress`: what it receives. */
export type WireDirection = 'egress' | 'ingress' | 'both';

export interface WireCounters {
  /** Frames delivered to the other side. */
  passed: number;
  /** Frames dropped by the loss setting. */
  dropped: number;
  /** Frames the reorder setting sent ahead of the delay. */
  reordered: number;
  /** Frames delivered after a frame that arrived later (reordering that really happened, jitter included). */
  outOfOrder: number;
  /** Frames dropped because 1000 were held already. */
  overflow: number;
  writeErrors: number;
  /** Frames held right now. */
  queued: number;
}

export interface WireStats {
  egress: WireCounters;
  ingress: WireCounters;
}

export interface UserspaceWire {
  readonly pid: number;
  /** The TAP that becomes the host's link (moved into its namespace). */
  readonly hostTap: string;
  /** The TAP that joins the bed's bridge. */
  readonly bridgeTap: string;
  /** Replaces the impairment of one direction (or both); no impairment until the first set. */
  set(imp: Impairment, direction?: WireDirection): Promise<void>;
  /** No impairment either way; frames held already still leave when due. */
  clear(): Promise<void>;
  counters(): Promise<WireStats>;
  /** Ends the process (SIGTERM) and waits for it: both TAPs vanish with it. */
  stop(): Promise<void>;
  /** SIGKILL by PID unless it exited already, for synchronous teardown paths (a process exit hook). */
  kill(): void;
}

/** Skips the test (or fails it under CI=true) where the wire cannot run: no python3, or no /dev/net/tun. */
export async function requireUserspaceWire(t: { skip(msg: string): void }): Promise<boolean> {
  if (!(await requirePackage(t, 'python3', 'python3'))) return false;
  if (existsSync('/dev/net/tun')) return true;
  const msg = 'the userspace wire needs /dev/net/tun (TAP devices)';
  if (process.env.CI === 'true') throw new Error(`CI=true: ${msg}`);
  t.skip(msg);
  return false;
}

/** One line for a note: `egress passed=.. dropped=.. reordered=.. out_of_order=.. ingress ...`. */
export function wireCountersLine(s: WireStats): string {
  const one = (c: WireCounters) => `passed=${c.passed} dropped=${c.dropped} reordered=${c.reordered} out_of_order=${c.outOfOrder} overflow=${c.overflow}`;
  return `egress ${one(s.egress)} ingress ${one(s.ingress)}`;
}

/** The counters accumulated between two readings (`queued` is the later reading's). */
export function countersSince(after: WireStats, before: WireStats): WireStats {
  const one = (a: WireCounters, b: WireCounters): WireCounters => ({
    passed: a.passed - b.passed, dropped: a.dropped - b.dropped, reordered: a.reordered - b.reordered, outOfOrder: a.outOfOrder - b.outOfOrder,
    overflow: a.overflow - b.overflow, writeErrors: a.writeErrors - b.writeErrors, queued: a.queued,
  });
  return { egress: one(after.egress, before.egress), ingress: one(after.ingress, before.ingress) };
}

interface Reply {
  id?: number;
  ok?: boolean;
  error?: string;
  ready?: boolean;
  counters?: WireStats;
}

/** Reads the child's stdout as JSON lines and hands each to `onReply`. */
function readReplies(child: ChildProcess, onReply: (r: Reply) => void): void {
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        onReply(JSON.parse(line) as Reply);
      } catch {
        /* not a reply line */
      }
    }
  });
}

/**
 * Starts a wire that creates the TAPs `hostTap` and `bridgeTap` (names of at most 15 characters, in the root
 * namespace; the caller then moves `hostTap` into a namespace: its file descriptor stays attached). Resolves once
 * both are open. The process exits when its stdin closes, so it does not outlive a test process that was killed.
 */
export async function startUserspaceWire(hostTap: string, bridgeTap: string): Promise<UserspaceWire> {
  const child = spawn('python3', [WIRE_SCRIPT, hostTap, bridgeTap], { stdio: ['pipe', 'pipe', 'pipe'] });
  // A write after the process died fails with EPIPE: the pending command is rejected by the exit instead.
  child.stdin!.on('error', () => {});
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  let ready: (() => void) | null = null;
  let nextId = 1;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  readReplies(child, (r) => {
    if (r.ready === true) ready?.();
    const w = r.id !== undefined ? waiting.get(r.id) : undefined;
    if (w === undefined) return;
    waiting.delete(r.id!);
    if (r.ok === true) w.resolve(r);
    else w.reject(new Error(`userspace wire: ${r.error ?? 'failed'}`));
  });
  const gone = () => new Error(`the userspace wire (${hostTap} <-> ${bridgeTap}) exited: ${stderr.trim() || 'no message'}`);
  void exited.then(() => {
    for (const w of waiting.values()) w.reject(gone());
    waiting.clear();
  });
  await new Promise<void>((resolve, reject) => {
    ready = resolve;
    child.once('error', reject);
    void exited.then(() => reject(gone()));
  });
  const pid = child.pid!;
  const command = (cmd: Record<string, unknown>): Promise<Reply> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(gone());
    const id = nextId++;
    return new Promise<Reply>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      child.stdin!.write(JSON.stringify({ ...cmd, id }) + '\n');
    });
  };
  return {
    pid,
    hostTap,
    bridgeTap,
    async set(imp, direction = 'egress') {
      await command({ op: 'set', dir: direction, ...imp });
    },
    async clear() {
      await command({ op: 'clear' });
    },
    async counters() {
      return (await command({ op: 'counters' })).counters!;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
    kill() {
      // Not once it exited: its PID may belong to another process by now.
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* exited */
      }
    },
  };
}
