// The single-hop TLS servers of the TLS benchmark, each in front of the upstream's HTTP/1.1 port: nginx and HAProxy as
// their hop B of the two-hop path (TLS 1.3, client certificate required, no session tickets) plus a plain-text
// listener, and Mycel sidecars of `api` alone, STRICT or PERMISSIVE, whose inbound port is what other sidecars reach.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, repoRoot, spawnManaged, waitUntil, type Managed } from '../lib/processes.js';
import { haproxyCommand, hopB as haproxyHopB } from './haproxy.js';
import { apiPermissive, mycelConfig, ready, sidecarArgs } from './mycel.js';
import { hopB as nginxHopB, nginxCommand } from './nginx.js';
import type { BenchEnv } from './peer.js';
import { startHop } from './two-hops.js';

export interface OneHop {
  name: string;
  /** TLS 1.3 listener requiring a client certificate. */
  tlsPort: number;
  /** Plain HTTP/1.1 listener of the same process, when it has one. */
  plainPort: number | null;
  processes: Managed[];
  stop(): Promise<void>;
}

function oneHop(name: string, tlsPort: number, plainPort: number | null, proc: Managed): OneHop {
  return { name, tlsPort, plainPort, processes: [proc], stop: () => proc.stop() };
}

/** nginx, one worker: `ssl_verify_client on`, TLS 1.3 only, and a plain listener in the same server block. */
export async function startNginxOneHop(env: BenchEnv): Promise<OneHop> {
  const [tls, plain] = (await freePorts(2)) as [number, number];
  const spec = { name: 'nginx', confFile: 'nginx.conf', command: nginxCommand };
  const proc = await startHop(spec, 'nginx (one hop)', 'nginx-tls-one-hop', (dir) => nginxHopB(dir, 'http1', { tls, plain, noTickets: true }, env), tls, env);
  return oneHop('nginx', tls, plain, proc);
}

/** HAProxy, nbthread 1: `verify required`, `ssl-min-ver TLSv1.3`, and a plain bind in the same frontend. */
export async function startHaproxyOneHop(env: BenchEnv): Promise<OneHop> {
  const [tls, plain] = (await freePorts(2)) as [number, number];
  const spec = { name: 'haproxy', confFile: 'haproxy.cfg', command: haproxyCommand };
  const proc = await startHop(spec, 'haproxy (one hop)', 'haproxy-tls-one-hop', () => haproxyHopB('http1', { tls, plain, noTickets: true }, env), tls, env);
  return oneHop('haproxy', tls, plain, proc);
}

/**
 * A sidecar of `api` alone (`mycel proxy --service api`) in front of the upstream. STRICT refuses plain text on the
 * inbound port; PERMISSIVE (a PeerAuthentication for api) serves it on the same port, beside mTLS.
 */
export async function startMycelOneHop(env: BenchEnv, mode: 'STRICT' | 'PERMISSIVE'): Promise<OneHop> {
  const [inbound, outbound, admin] = (await freePorts(3)) as [number, number, number];
  const dir = join(env.tmpDir, `mycel-one-hop-${mode.toLowerCase()}`);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'mesh.yaml');
  writeFileSync(config, mycelConfig('http1', 'h1', inbound, undefined, undefined, mode === 'PERMISSIVE' ? apiPermissive : undefined));
  const args = sidecarArgs('api', env.upstream.http1, config, { inbound, outbound, admin }, env.certs);
  const proc = spawnManaged(`mycel sidecar (api, ${mode})`, process.execPath, [join(repoRoot, 'bin', 'mycel.js'), ...args], {
    cpu: env.cpuProxy, cwd: repoRoot, logFile: join(dir, 'sidecar.log'),
  });
  try {
    await waitUntil(`mycel sidecar (api, ${mode}) /ready`, () => ready(admin), { timeoutMs: 20_000, intervalMs: 200, watch: [proc] });
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return oneHop(mode === 'STRICT' ? 'mycel' : 'mycel-permissive', inbound, mode === 'PERMISSIVE' ? inbound : null, proc);
}
