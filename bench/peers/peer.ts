// What every benchmarked path provides: a client-facing port for a protocol family, the proxy processes to
// measure, and how to stop them. Peers that cannot carry a family throw NotApplicable with the reason.
import type { Certs } from '../lib/certs.js';
import type { Managed } from '../lib/processes.js';

/** Scenarios sharing one set of running peers (same listener protocol and upstream). */
export type Family = 'http1' | 'h2c' | 'grpc' | 'tcp';

export interface UpstreamPorts {
  /** nginx, HTTP/1.1: /small, /large (64 KiB), /upload (accepts a 64 KiB POST). */
  http1: number;
  /** nginx, h2c (prior knowledge): any path answers the small body. */
  h2c: number;
  /** grpc-js unary echo. */
  grpc: number;
  /** TCP sink / echo. */
  tcp: number;
}

export interface BenchEnv {
  tmpDir: string;
  certs: Certs;
  /** taskset CPU list for the load generators and the upstream apps (null: no pinning). */
  cpuLoad: string | null;
  /** taskset CPU list for both proxy hops. */
  cpuProxy: string | null;
  upstream: UpstreamPorts;
}

export interface PathInstance {
  /** Row name: direct, nginx, haproxy, mycel, mycel-h2transport. */
  path: string;
  /** Where the load generator connects (127.0.0.1). */
  port: number;
  /** Host / :authority the client sends. */
  authority: string;
  /** Proxy processes (both hops); their trees are sampled for CPU and RSS. Empty for direct. */
  processes: Managed[];
  /** How this path carries the family, when it differs from the others (shown under the table). */
  notes: string[];
  stop(): Promise<void>;
}

export interface Peer {
  /** Row names this peer provides for a family (mycel has two for HTTP/1.1). */
  paths(family: Family): string[];
  /** Starts the proxies of one row; throws NotApplicable, or any error with the reason it could not start. */
  start(family: Family, env: BenchEnv, path: string): Promise<PathInstance>;
}

/** The peer cannot do this scenario at all on this machine (printed as n/a with the reason). */
export class NotApplicable extends Error {
  override readonly name = 'NotApplicable';
}
