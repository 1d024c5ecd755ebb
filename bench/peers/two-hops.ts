// Starts the two hops of a classic proxy path (nginx, HAProxy): hop B (TLS listener, towards the upstream) first,
// then hop A (the client-facing listener), each from its own config file; stops whatever started if one fails.
// startHop alone runs one such process (the TLS benchmark's single hop B). Both hops sit on loopback unless a
// placement puts each in a network namespace of its own (bench/hosts.ts: hop A on host web, hop B on host api).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, portAccepts, spawnManaged, waitUntil, type Managed } from '../lib/processes.js';
import type { BenchEnv, Family, PathInstance } from './peer.js';

export type Hop = 'a' | 'b';
export interface HopPorts {
  a: number;
  b: number;
  /** Address hop A listens on (default 127.0.0.1). */
  aHost?: string;
  /** Address hop B listens on and hop A sends to (default 127.0.0.1; the other host's address across hosts). */
  bHost?: string;
}

/** Where a hop runs: a command prefix that execs it in place (`ip netns exec NS`), and the address the runner checks. */
export interface HopPlace {
  prefix: readonly string[];
  /** Address on which the runner sees the hop's port accept connections. */
  reachAt: string;
}

/** Both hops on other hosts, and the ports (and listen addresses) they use there. */
export interface TwoHopPlacement {
  ports: HopPorts;
  a: HopPlace;
  b: HopPlace;
}

/** Where hop B listens: its TLS port, and for the TLS benchmark a plain-text port and session tickets off. */
export interface HopBListen {
  tls: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
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
 * waits until `port` accepts; `watch` are processes already started with it (their exit also fails the wait). With
 * `place` the process runs under its prefix and is checked at its address.
 */
export async function startHop(
  spec: Pick<TwoHopSpec, 'name' | 'confFile' | 'command'>,
  label: string,
  dirName: string,
  config: (dir: string) => string,
  port: number,
  env: BenchEnv,
  watch: Managed[] = [],
  place?: HopPlace,
): Promise<Managed> {
  const dir = join(env.tmpDir, dirName);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, spec.confFile);
  writeFileSync(conf, config(dir));
  const { cmd, args } = spec.command(dir, conf);
  const argv = [...(place?.prefix ?? []), cmd, ...args];
  const proc = spawnManaged(label, argv[0]!, argv.slice(1), { cpu: env.cpuProxy, logFile: join(dir, `${spec.name}.log`) });
  try {
    await waitUntil(label, () => portAccepts(port, 500, place?.reachAt), { timeoutMs: 10_000, watch: [...watch, proc] });
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return proc;
}

/** Hop B, then hop A; on loopback with free ports, or where `placement` says. */
export async function startTwoHops(spec: TwoHopSpec, family: Family, env: BenchEnv, placement?: TwoHopPlacement): Promise<PathInstance> {
  let ports: HopPorts;
  if (placement) ports = placement.ports;
  else {
    const [a, b] = (await freePorts(2)) as [number, number];
    ports = { a, b };
  }
  const processes: Managed[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((p) => p.stop()));
  };
  try {
    for (const hop of ['b', 'a'] as const) {
      processes.push(
        await startHop(spec, `${spec.name} hop ${hop.toUpperCase()}`, `${spec.name}-${family}-${hop}`, (dir) => spec.config(hop, dir, ports), ports[hop], env, processes, placement?.[hop]),
      );
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { path: spec.name, port: ports.a, authority: 'api', processes, notes: spec.notes, stop };
}
