// Test harness: a real 1- or 3-member etcd cluster on 127.0.0.1 (free ports, temporary data dirs, fast elections);
// members can be SIGKILLed and restarted on the same ports and data, and close() stops them by PID and removes the dirs.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { request, requirePackage } from './http.js';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  /** PID of the running process, undefined while the member is killed. */
  readonly pid: number | undefined;
}

export interface EtcdClusterOptions {
  members?: 1 | 3;
  /** Raft heartbeat in ms (etcd's default is 100; tests go faster). */
  heartbeatMs?: number;
  /** Raft election timeout in ms, at least 5 heartbeats. */
  electionMs?: number;
  /**
   * One host per member (a network namespace of a test bed): member i listens on hosts[i].address (ports 2379 and
   * 2380) and runs through hosts[i].prefix (e.g. `ip netns exec NS`). Absent: every member on 127.0.0.1.
   */
  hosts?: ReadonlyArray<EtcdHost>;
}

export interface EtcdHost {
  address: string;
  /** A command prefix that execs the member in place (the PID stays etcd's). */
  prefix: readonly string[];
}

const START_DEADLINE_MS = 15_000;
const LOG_TAIL_LINES = 40;

interface Member {
  name: string;
  host: string;
  prefix: readonly string[];
  clientPort: number;
  peerPort: number;
  dataDir: string;
  proc: ChildProcess | undefined;
  exited: Promise<void>;
  logTail: string[];
}

export class EtcdCluster {
  private closed = false;
  private readonly onExit = (): void => this.killAllSync();

  private constructor(
    private readonly members: Member[],
    private readonly root: string,
    private readonly flags: readonly string[],
  ) {
    // A crashed test must not leave etcd processes behind.
    process.once('exit', this.onExit);
  }

  /** Starts the cluster and waits until every member reports healthy. */
  static async start(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const hosts = opts.hosts;
    const size = hosts?.length ?? opts.members ?? 1;
    const heartbeat = opts.heartbeatMs ?? 25;
    const election = opts.electionMs ?? 250;
    const root = await mkdtemp(join(tmpdir(), 'mycel-etcd-'));
    // Each host has ports of its own; on loopback the members need distinct free ones.
    const ports = hosts !== undefined ? hosts.flatMap(() => [2379, 2380]) : await freePorts(size * 2);
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      members.push({
        name: `m${i}`,
        host: hosts?.[i]?.address ?? '127.0.0.1',
        prefix: hosts?.[i]?.prefix ?? [],
        clientPort: ports[2 * i] as number,
        peerPort: ports[2 * i + 1] as number,
        dataDir: join(root, `m${i}`),
        proc: undefined,
        exited: Promise.resolve(),
        logTail: [],
      });
    }
    const initialCluster = members.map((m) => `${m.name}=http://${m.host}:${m.peerPort}`).join(',');
    const flags = [
      `--initial-cluster=${initialCluster}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=mycel-test-${process.pid}-${ports[0]}`,
      `--heartbeat-interval=${heartbeat}`,
      `--election-timeout=${election}`,
      '--logger=zap',
      '--log-level=warn',
    ];
    const cluster = new EtcdCluster(members, root, flags);
    try {
      for (let i = 0; i < size; i++) cluster.spawnMember(i);
      await Promise.all(members.map((_, i) => cluster.waitHealthy(i)));
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /** Client URLs of every member (`http://ADDRESS:PORT`), in member order. */
  get clientUrls(): string[] {
    return this.members.map((m) => `http://${m.host}:${m.clientPort}`);
  }

  get size(): number {
    return this.members.length;
  }

  member(i: number): EtcdMember {
    const m = this.at(i);
    return { name: m.name, clientUrl: `http://${m.host}:${m.clientPort}`, peerUrl: `http://${m.host}:${m.peerPort}`, dataDir: m.dataDir, pid: m.proc?.pid };
  }

  /** SIGKILLs the member by PID and waits for it to exit. */
  async kill(i: number): Promise<void> {
    const m = this.at(i);
    if (m.proc?.pid === undefined) return;
    process.kill(m.proc.pid, 'SIGKILL');
    await m.exited;
    m.proc = undefined;
  }

  /**
   * Starts a killed member again with its data dir and ports. Waits until it is healthy unless `wait` is false
   * (a member cannot report healthy while the cluster has no quorum).
   */
  async restart(i: number, wait = true): Promise<void> {
    if (this.at(i).proc !== undefined) throw new Error(`etcd member ${i} is still running`);
    this.spawnMember(i);
    if (wait) await this.waitHealthy(i);
  }

  /** Index of the member that is the raft leader, asked of the running members; undefined when there is none. */
  async leader(): Promise<number | undefined> {
    for (let i = 0; i < this.members.length; i++) {
      const m = this.at(i);
      if (m.proc === undefined) continue;
      const status = await postJson(m, '/v3/maintenance/status', {}).catch(() => undefined);
      const s = status as { header?: { member_id?: string }; leader?: string } | undefined;
      if (s?.leader !== undefined && s.leader !== '0') {
        const idx = await this.memberIndexById(m, s.leader);
        if (idx !== undefined) return idx;
      }
    }
    return undefined;
  }

  /** Compacts the key-value history up to `revision` (physically, so that older revisions are gone when it returns). */
  async compact(revision: number): Promise<void> {
    const i = this.members.findIndex((m) => m.proc !== undefined);
    if (i < 0) throw new Error('no etcd member is running');
    const res = (await postJson(this.at(i), '/v3/kv/compaction', { revision: String(revision), physical: true })) as { error?: string };
    if (res.error !== undefined) throw new Error(`etcd compaction to ${revision} failed: ${res.error}`);
  }

  /** Waits until the member answers `/health` with `true` (it has a leader and serves a quorum read). */
  async waitHealthy(i: number, deadlineMs = START_DEADLINE_MS): Promise<void> {
    const m = this.at(i);
    const until = Date.now() + deadlineMs;
    let last = 'no answer';
    for (let attempt = 0; Date.now() < until; attempt++) {
      if (m.proc === undefined) throw new Error(`etcd member ${m.name} exited while starting:\n${m.logTail.join('\n')}`);
      const body = await getText(m, '/health').catch((err: Error) => err.message);
      if (/"health":\s*"true"/.test(body)) return;
      last = body;
      await sleep(Math.min(25 * 2 ** attempt, 200));
    }
    throw new Error(`etcd member ${m.name} not healthy within ${deadlineMs} ms (last: ${last}):\n${m.logTail.join('\n')}`);
  }

  /** Stops every member by PID and removes the data dirs. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    process.removeListener('exit', this.onExit);
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    await rm(this.root, { recursive: true, force: true });
  }

  private at(i: number): Member {
    const m = this.members[i];
    if (m === undefined) throw new Error(`no etcd member ${i} (cluster of ${this.members.length})`);
    return m;
  }

  private spawnMember(i: number): void {
    const m = this.at(i);
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=http://${m.host}:${m.clientPort}`,
      `--advertise-client-urls=http://${m.host}:${m.clientPort}`,
      `--listen-peer-urls=http://${m.host}:${m.peerPort}`,
      `--initial-advertise-peer-urls=http://${m.host}:${m.peerPort}`,
      ...this.flags,
    ];
    const argv = [...m.prefix, 'etcd', ...args];
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    m.proc = proc;
    m.logTail = [];
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      for (const line of d.split('\n')) if (line.length > 0) m.logTail.push(line);
      if (m.logTail.length > LOG_TAIL_LINES) m.logTail.splice(0, m.logTail.length - LOG_TAIL_LINES);
    });
    m.exited = new Promise((resolve) => proc.once('exit', () => {
      if (m.proc === proc) m.proc = undefined;
      resolve();
    }));
    proc.once('error', (err) => m.logTail.push(`spawn failed: ${err.message}`));
  }

  private async memberIndexById(m: Member, id: string): Promise<number | undefined> {
    const list = (await postJson(m, '/v3/cluster/member/list', {}).catch(() => undefined)) as { members?: Array<{ ID?: string; name?: string }> } | undefined;
    const name = list?.members?.find((x) => x.ID === id)?.name;
    const idx = this.members.findIndex((x) => x.name === name);
    return idx >= 0 ? idx : undefined;
  }

  private killAllSync(): void {
    for (const m of this.members) {
      if (m.proc?.pid !== undefined) {
        try {
          process.kill(m.proc.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
}

/**
 * Starts an etcd cluster for test `t`, or skips the test (fails under CI=true) when the etcd-server package is
 * missing; the caller closes it.
 */
export async function startEtcdCluster(t: { skip(msg: string): void }, opts: EtcdClusterOptions = {}): Promise<EtcdCluster | undefined> {
  if (!(await requirePackage(t, 'etcd', 'etcd-server'))) return undefined;
  return EtcdCluster.start(opts);
}

/** Distinct loopback ports that were free a moment ago (all held open together, so no two are the same). */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

async function getText(m: Member, path: string): Promise<string> {
  return (await request(`${m.host}:${m.clientPort}`, { path, timeoutMs: 2000 })).body.toString('utf8');
}

async function postJson(m: Member, path: string, body: unknown): Promise<unknown> {
  const reply = await request(`${m.host}:${m.clientPort}`, { method: 'POST', path, body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, timeoutMs: 2000 });
  return JSON.parse(reply.body.toString('utf8')) as unknown;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
