// Starts the two hops of a classic proxy path (nginx, HAProxy): hop B (TLS listener, towards the upstream) first,
// then hop A (the client-facing listener), each from its own config file; stops whatever started if one fails.
// startHop alone runs one such process (the TLS benchmark's single hop B).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, portAccepts, spawnManaged, waitUntil, type Managed } from '../lib/processes.js';
import type { BenchEnv, Family, PathInstance } from './peer.js';

export type Hop = 'a' | 'b';
export interface HopPorts {
  a: number;
  b: number;
}

/** Where hop B listens: its TLS port, and for the TLS benchmark a plain-text port and session tickets off. */
export interface HopBListen {
  tls: number;
  /** A second listener without TLS beside it, same routing (HTTP only). */
  plain?: number;
  /** No TLS session tickets (a Mycel sidecar issues none): every handshake does the same work. */
  noTickets?: boolean;
}

export interface TwoHopSpec {
  /** Row name and directory prefix: nginx, haproxy. */
  name: string;
  /** Config file name inside the hop's directory. */
  confFile: string;
  /** The config text of one hop. */
  config(hop: Hop, dir: string, ports: HopPorts): string;
  /** Command and arguments that run one hop in the foreground. */
  command(dir: string, conf: string): { cmd: string; args: string[] };
  notes: string[];
}

/**
 * Starts one proxy process from a config written to `<tmpDir>/<dirName>/<confFile>`, pinned to the proxies' CPU, and
 * waits until `port` accepts; `watch` are processes already started with it (their exit also fails the wait).
 */
export async function startHop(
  spec: Pick<TwoHopSpec, 'name' | 'confFile' | 'command'>,
  label: string,
  dirName: string,
  config: (dir: string) => string,
  port: number,
  env: BenchEnv,
  watch: Managed[] = [],
): Promise<Managed> {
  const dir = join(env.tmpDir, dirName);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, spec.confFile);
  writeFileSync(conf, config(dir));
  const { cmd, args } = spec.command(dir, conf);
  const proc = spawnManaged(label, cmd, args, { cpu: env.cpuProxy, logFile: join(dir, `${spec.name}.log`) });
  try {
    await waitUntil(label, () => portAccepts(port), { timeoutMs: 10_000, watch: [...watch, proc] });
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return proc;
}

export async function startTwoHops(spec: TwoHopSpec, family: Family, env: BenchEnv): Promise<PathInstance> {
  const [a, b] = (await freePorts(2)) as [number, number];
  const ports: HopPorts = { a, b };
  const processes: Managed[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((p) => p.stop()));
  };
  try {
    for (const hop of ['b', 'a'] as const) {
      processes.push(
        await startHop(spec, `${spec.name} hop ${hop.toUpperCase()}`, `${spec.name}-${family}-${hop}`, (dir) => spec.config(hop, dir, ports), ports[hop], env, processes),
      );
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { path: spec.name, port: a, authority: 'api', processes, notes: spec.notes, stop };
}
