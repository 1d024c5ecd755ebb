// One real `mycel control` process for the scale benchmark: started pinned (file store in a temp dir), its HTTP API
// (apply, join tokens, metrics) and its CPU seconds and RSS read from /proc.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clockTicksPerSecond, parseProcStat, repoRoot, spawnManaged, waitUntil, type Managed } from './processes.js';

export interface ControlPlaneProcess {
  managed: Managed;
  /** The node process itself (taskset execs it, so the same PID). */
  pid: number;
  url: string;
  adminToken: string;
  apply(resources: unknown[]): Promise<{ revision: number }>;
  joinToken(service: string): Promise<string>;
  /** The control plane's own count of open config streams (mycel_control_connected_proxies). */
  connectedProxies(): Promise<number>;
  stop(): Promise<void>;
}

export interface StartOptions {
  dir: string;
  /** CPU list for taskset, or null. */
  cpu: string | null;
  lease: string;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs: string[];
}

/** utime + stime of one process in seconds (one clock tick, usually 10 ms, of resolution). */
export function cpuSeconds(pid: number): number {
  const st = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (st === null) throw new Error(`cannot parse /proc/${pid}/stat`);
  return st.ticks / clockTicksPerSecond;
}

/** VmRSS of one process in MiB. */
export function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

export async function startControlPlane(o: StartOptions): Promise<ControlPlaneProcess> {
  const bin = join(repoRoot, 'bin', 'mycel.js');
  const args = [...o.nodeArgs, bin, 'control', '--store', `file:${join(o.dir, 'store')}`, '--state-dir', o.dir, '--listen', '127.0.0.1:0', '--lease', o.lease];
  const managed = spawnManaged('mycel control', process.execPath, args, {
    cpu: o.cpu,
    logFile: join(o.dir, 'control.log'),
    env: { ...process.env, MYCEL_EXIT_WITH_PARENT: '1' },
  });
  const infoFile = join(o.dir, 'control.json');
  try {
    await waitUntil('mycel control', async () => existsSync(infoFile) && existsSync(join(o.dir, 'admin-token')), { timeoutMs: 30_000, watch: [managed] });
  } catch (err) {
    await managed.stop();
    throw err;
  }
  const info = JSON.parse(readFileSync(infoFile, 'utf8')) as { url: string; pid: number };
  const adminToken = readFileSync(join(o.dir, 'admin-token'), 'utf8').trim();

  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(info.url + path, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
    return (path === '/metrics' ? text : JSON.parse(text)) as T;
  };

  return {
    managed,
    pid: info.pid,
    url: info.url,
    adminToken,
    apply: (resources) => call<{ revision: number }>('POST', '/api/v1/apply', { resources }),
    joinToken: async (service) => (await call<{ token: string }>('POST', '/api/v1/tokens', { service })).token,
    async connectedProxies() {
      const text = await call<string>('GET', '/metrics');
      const m = /^mycel_control_connected_proxies(?:\{\})? (\d+)/m.exec(text);
      if (m === null) throw new Error('mycel_control_connected_proxies is missing from /metrics');
      return Number(m[1]);
    },
    // A CPU profile (--cpu-prof) is written at exit: give it time.
    stop: () => managed.stop(o.nodeArgs.includes('--cpu-prof') ? 20_000 : 5000),
  };
}
