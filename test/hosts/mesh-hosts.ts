// A small mesh across hosts of a bed for chaos tests and the multi-host bench: `web` (the caller, its sidecar's
// upstream binding reachable from the test process) and api instances on their own hosts, each with the ledger app
// and its sidecar, all from one resource file (no control plane) or from a control plane.

import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { spawnMycel, type MycelProcess } from '../helpers/mycel-process.js';
import { LEDGER_APP } from './ledger.js';
import type { Host, HostBed } from './netns-bed.js';

export const APP_PORT = 8080;
export const INBOUND_PORT = 15006;
export const ADMIN_PORT = 15000;
export const BINDING_PORT = 9191;

/** A temp dir with certificates for `services` and the ledger app; removed after the test. */
export async function meshWorkDir(t: { after(fn: () => unknown): void }, services: string[]): Promise<{ dir: string; appFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-chaos-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeDevCertificates(dir, { services });
  const appFile = join(dir, 'ledger-app.cjs');
  await writeFile(appFile, LEDGER_APP);
  return { dir, appFile };
}

/** Starts the ledger app on `host` as instance `name`; resolves once it listens. */
export async function startLedgerApp(host: Host, appFile: string, name: string): Promise<ChildProcess> {
  const child = host.spawn(process.execPath, [appFile], { env: { ...process.env, NAME: name, PORT: String(APP_PORT) }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      if (d.toString().includes('ledger app ready')) {
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`ledger app ${name} exited (${code})`)));
  });
  return child;
}

export interface MeshYamlOptions {
  /** api instances' hosts (their sidecars' inbound is their address:15006). */
  apiHosts: Host[];
  web: Host;
  transport?: 'h1' | 'h2';
  /** Retries, outlier detection and health checks for api (on by default). */
  resilience?: boolean;
  /** With a control plane the sidecars register the endpoints: no static ones. */
  staticEndpoints?: boolean;
}

/** Resource file text: MeshConfig (short connect timeout, 1 s keepalive), Services web and api, api's TrafficPolicy. */
export function meshYaml(o: MeshYamlOptions): string {
  const eps = (hs: Host[]) => (o.staticEndpoints === false ? '' : `\n  endpoints: [ ${hs.map((h) => `{ address: ${h.address}, port: ${INBOUND_PORT} }`).join(', ')} ]`);
  const policy = o.resilience === false ? '' : `---
apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { kind: Service, name: api }
  loadBalancer: { type: RoundRobin }
  timeout: 4s
  retry: { attempts: 2, perTryTimeout: 1500ms, retryOn: [ connect-failure, refused-stream, reset, gateway-error ], budget: { ratio: 0.2, minRetriesPerSecond: 10 } }
  outlierDetection: { consecutiveGatewayErrors: 3, baseEjectionTime: 2s, maxEjectionPercent: 50 }
  healthCheck: { http: { path: /healthz }, interval: 1s, timeout: 800ms, unhealthyThreshold: 2, healthyThreshold: 1 }
`;
  return `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  trustDomain: mycel.local
  timeouts: { connect: 1s }
  transport: { http1: ${o.transport ?? 'h1'}, keepalive: { interval: 1s, timeout: 1s } }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: web }
spec:
  ports: [ { port: ${APP_PORT}, appProtocol: http } ]${eps([o.web])}
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: ${APP_PORT}, appProtocol: http } ]${eps(o.apiHosts)}
${policy}`;
}

/** `source`: ['--config', FILE] or ['--control', URLS, '--token', FILE, '--state-dir', DIR]. */
export async function startHostSidecar(bed: HostBed, h: Host, service: string, dir: string, source: string[], extra: string[] = []): Promise<MycelProcess> {
  const args = ['proxy', '--service', service, '--app-port', String(APP_PORT), ...source,
    '--inbound', `0.0.0.0:${INBOUND_PORT}`, '--outbound', '127.0.0.1:15001', '--admin', `0.0.0.0:${ADMIN_PORT}`,
    '--cert', join(dir, `${service}.crt`), '--key', join(dir, `${service}.key`), '--ca', join(dir, 'ca.crt'), ...extra];
  const { p } = await spawnMycel(`sidecar ${service} on ${h.name}`, args, /ready: outbound/, { prefix: h.prefix, timeoutMs: 40_000 });
  if (p.proc.pid !== undefined) bed.track(p.proc.pid);
  return p;
}

/** web's sidecar binds api on all its addresses, so that the test process (or a client host) reaches it. */
export const WEB_BINDING = ['--upstream', `api=0.0.0.0:${BINDING_PORT}`];
