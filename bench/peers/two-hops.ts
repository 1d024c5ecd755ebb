// Starts the two hops of a classic proxy path (nginx, HAProxy): hop B (TLS listener, towards the upstream) first,
// then hop A (the client-facing listener), each from its own config file; stops whatever started if one fails.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, portAccepts, spawnManaged, waitUntil, type Managed } from '../lib/processes.js';
import type { BenchEnv, Family, PathInstance } from './peer.js';

export type Hop = 'a' | 'b';
export interface HopPorts {
  a: number;
  b: number;
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

export async function startTwoHops(spec: TwoHopSpec, family: Family, env: BenchEnv): Promise<PathInstance> {
  const [a, b] = (await freePorts(2)) as [number, number];
  const ports: HopPorts = { a, b };
  const processes: Managed[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((p) => p.stop()));
  };
  try {
    for (const hop of ['b', 'a'] as const) {
      const dir = join(env.tmpDir, `${spec.name}-${family}-${hop}`);
      mkdirSync(dir, { recursive: true });
      const conf = join(dir, spec.confFile);
      writeFileSync(conf, spec.config(hop, dir, ports));
      const { cmd, args } = spec.command(dir, conf);
      processes.push(spawnManaged(`${spec.name} hop ${hop.toUpperCase()}`, cmd, args, { cpu: env.cpuProxy, logFile: join(dir, `${spec.name}.log`) }));
      await waitUntil(`${spec.name} hop ${hop}`, () => portAccepts(ports[hop]), { timeoutMs: 10_000, watch: processes });
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { path: spec.name, port: a, authority: 'api', processes, notes: spec.notes, stop };
}
