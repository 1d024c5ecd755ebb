// Test harness: real `mycel proxy` processes on 127.0.0.1 with throwaway certificates, a config per sidecar, and
// their addresses read from the ready line; everything is stopped and removed by close().

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { MYCEL_BIN, REPO, spawnMycel, type MycelProcess } from './mycel-process.js';

export { REPO, MYCEL_BIN };

export interface SidecarProcess extends MycelProcess {
  service: string;
  outbound: string;
  inbound: string;
  admin: string;
  upstreams: Record<string, string>;
}

export interface StartSidecarOptions {
  dir: string;
  service: string;
  appPort: number;
  configFiles: string[];
  /** Take config from a control plane instead of (or with no) config files. */
  control?: { url: string; tokenFile: string; stateDir?: string; labels?: Record<string, string> };
  upstreams?: string[];
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Node flags for the sidecar process (e.g. --cpu-prof for profiling). */
  nodeArgs?: string[];
  /** With `control`: no certificate files, the sidecar gets its certificate from the mesh CA. */
  meshCa?: boolean;
}

/** Starts `mycel proxy` and resolves once it prints its ready line (rejects with its stderr if it exits first). */
export async function startSidecar(o: StartSidecarOptions): Promise<SidecarProcess> {
  const args = [
    'proxy',
    '--service', o.service,
    '--app-port', String(o.appPort),
    '--inbound', '127.0.0.1:0',
    '--outbound', '127.0.0.1:0',
    '--admin', '127.0.0.1:0',
    ...(o.meshCa === true ? [] : ['--cert', join(o.dir, `${o.service}.crt`), '--key', join(o.dir, `${o.service}.key`), '--ca', join(o.dir, 'ca.crt')]),
    ...o.configFiles.flatMap((f) => ['--config', f]),
    ...(o.control !== undefined ? ['--control', o.control.url, '--token', o.control.tokenFile, '--state-dir', o.control.stateDir ?? join(o.dir, `state-${o.service}`), ...Object.entries(o.control.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`])] : []),
    ...(o.upstreams ?? []).flatMap((u) => ['--upstream', u]),
    ...(o.extraArgs ?? []),
  ];
  const { p, match: m } = await spawnMycel(`sidecar ${o.service}`, args, /ready: outbound (\S+) inbound (\S+) admin (\S+)((?: upstream \S+)*)\n/, { ...(o.env ? { env: o.env } : {}), ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}) });
  const upstreams: Record<string, string> = {};
  for (const u of (m[4] ?? '').trim().split(/\s+/)) {
    const mm = /^([^=]+)=(\S+)$/.exec(u);
    if (mm) upstreams[mm[1] as string] = mm[2] as string;
  }
  return { ...p, service: o.service, outbound: m[1] as string, inbound: m[2] as string, admin: m[3] as string, upstreams };
}

/** A MeshConfig and the caller service `web`: the start of most test configs. */
export const MESH_AND_WEB = `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: web }
spec: { ports: [ { port: 80 } ] }
`;

export function portOf(addr: string): number {
  return Number(addr.slice(addr.lastIndexOf(':') + 1));
}

export type AppProtocolOption = 'http' | 'http2' | 'grpc' | 'tcp' | undefined;

export interface MeshOptions {
  /** Port of the app behind the api sidecar. */
  apiAppPort: number;
  /** Declared appProtocol of api's port (undefined: detect). */
  apiProtocol?: AppProtocolOption;
  /** Declared appProtocol of web's own port. */
  webProtocol?: AppProtocolOption;
  /** How HTTP/1.1 travels between the sidecars. */
  transportHttp1?: 'h1' | 'h2';
  /** Extra MeshConfig spec fields (YAML flow text inserted into spec), e.g. `limits: { maxHeaderCount: 20 }`. */
  meshSpec?: string;
  /** Extra YAML documents for web's config (e.g. an external Service). */
  extraWebDocs?: string;
  /** Web sidecar's app port (nothing needs to listen there for outbound tests). */
  webAppPort?: number;
  env?: Record<string, string>;
  nodeArgs?: string[];
}

export interface TwoSidecars {
  dir: string;
  web: SidecarProcess;
  api: SidecarProcess;
  webConfig: string;
  apiConfig: string;
  /** host:port of web's upstream binding to api. */
  apiBinding: string;
  meshYaml(endpoints: Array<{ address: string; port: number }>): string;
  close(): Promise<void>;
}

export function meshDocs(o: MeshOptions, apiEndpoints: Array<{ address: string; port: number }>): string {
  const proto = (p: AppProtocolOption) => (p ? `, appProtocol: ${p}` : '');
  const eps = apiEndpoints.map((e) => `{ address: ${e.address}, port: ${e.port} }`).join(', ');
  return `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  trustDomain: mycel.local
  transport: { http1: ${o.transportHttp1 ?? 'h1'} }
${o.meshSpec ? '  ' + o.meshSpec.trim().split('\n').join('\n  ') + '\n' : ''}---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 80${proto(o.apiProtocol)} } ]
  endpoints: [ ${eps} ]
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: web }
spec:
  ports: [ { port: 80${proto(o.webProtocol)} } ]
${o.extraWebDocs ? '---\n' + o.extraWebDocs : ''}`;
}

/** web (client side) -> mTLS -> api (server side) -> app on apiAppPort. */
export async function startTwoSidecars(o: MeshOptions): Promise<TwoSidecars> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-test-'));
  await writeDevCertificates(dir, { services: ['web', 'api'] });
  const apiConfig = join(dir, 'api.yaml');
  await writeFile(apiConfig, meshDocs(o, []));
  const api = await startSidecar({ dir, service: 'api', appPort: o.apiAppPort, configFiles: [apiConfig], env: o.env ?? {}, nodeArgs: o.nodeArgs ?? [] });
  const apiEp = [{ address: '127.0.0.1', port: portOf(api.inbound) }];
  const webConfig = join(dir, 'web.yaml');
  await writeFile(webConfig, meshDocs(o, apiEp));
  let web: SidecarProcess;
  try {
    web = await startSidecar({ dir, service: 'web', appPort: o.webAppPort ?? 1, configFiles: [webConfig], upstreams: ['api=127.0.0.1:0'], env: o.env ?? {}, nodeArgs: o.nodeArgs ?? [] });
  } catch (err) {
    await api.stop('SIGKILL');
    throw err;
  }
  return {
    dir,
    web,
    api,
    webConfig,
    apiConfig,
    apiBinding: web.upstreams.api as string,
    meshYaml: (eps) => meshDocs(o, eps),
    async close() {
      await Promise.all([web.stop('SIGKILL'), api.stop('SIGKILL')]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
