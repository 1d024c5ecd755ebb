// Test harness: real `mycel proxy` processes on 127.0.0.1 with throwaway certificates, a config per sidecar, and
// their addresses read from the ready line; everything is stopped and removed by close().

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDevCertificates } from '../../src/security/dev-ca.js';

export const REPO = resolve(fileURLToPath(new URL('../../../', import.meta.url)));
export const MYCEL_BIN = join(REPO, 'bin', 'mycel.js');

export interface SidecarProcess {
  service: string;
  outbound: string;
  inbound: string;
  admin: string;
  upstreams: Record<string, string>;
  proc: ChildProcess;
  /** stderr lines so far (structured JSON logs). */
  logs: string[];
  /** Parsed JSON log records so far. */
  records(): Array<Record<string, unknown>>;
  /** Resolves with the first log record (past or future) matching `pred`; rejects after timeoutMs. */
  waitForLog(pred: (r: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartSidecarOptions {
  dir: string;
  service: string;
  appPort: number;
  configFiles: string[];
  upstreams?: string[];
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Node flags for the sidecar process (e.g. --cpu-prof for profiling). */
  nodeArgs?: string[];
}

/** Starts `mycel proxy` and resolves once it prints its ready line (rejects with its stderr if it exits first). */
export function startSidecar(o: StartSidecarOptions): Promise<SidecarProcess> {
  const args = [
    ...(o.nodeArgs ?? []),
    MYCEL_BIN, 'proxy',
    '--service', o.service,
    '--app-port', String(o.appPort),
    '--inbound', '127.0.0.1:0',
    '--outbound', '127.0.0.1:0',
    '--admin', '127.0.0.1:0',
    '--cert', join(o.dir, `${o.service}.crt`),
    '--key', join(o.dir, `${o.service}.key`),
    '--ca', join(o.dir, 'ca.crt'),
    ...o.configFiles.flatMap((f) => ['--config', f]),
    ...(o.upstreams ?? []).flatMap((u) => ['--upstream', u]),
    ...(o.extraArgs ?? []),
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MYCEL_LOG_LEVEL: 'info', MYCEL_EXIT_WITH_PARENT: '1', ...o.env } });
  const logs: string[] = [];
  const waiters = new Set<(line: string) => void>();
  let errBuf = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    errBuf += d;
    let nl;
    while ((nl = errBuf.indexOf('\n')) !== -1) {
      const line = errBuf.slice(0, nl);
      logs.push(line);
      errBuf = errBuf.slice(nl + 1);
      for (const w of waiters) w(line);
    }
  });
  const parse = (l: string): Record<string, unknown> | null => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return null;
    }
  };
  const waitForLog = (pred: (r: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> => {
    for (const l of logs) {
      const r = parse(l);
      if (r !== null && pred(r)) return Promise.resolve(r);
    }
    return new Promise((resolveWait, rejectWait) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        rejectWait(new Error(`no matching log line from ${o.service} within ${timeoutMs} ms; last lines:\n${logs.slice(-5).join('\n')}`));
      }, timeoutMs);
      const check = (line: string) => {
        const r = parse(line);
        if (r !== null && pred(r)) {
          clearTimeout(timer);
          waiters.delete(check);
          resolveWait(r);
        }
      };
      waiters.add(check);
    });
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  return new Promise((resolveStart, rejectStart) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      rejectStart(new Error(`sidecar ${o.service} did not get ready in 15 s:\n${logs.join('\n')}${errBuf}`));
    }, 15_000);
    void exited.then((r) => {
      clearTimeout(timer);
      rejectStart(new Error(`sidecar ${o.service} exited (${r.code ?? r.signal}) before ready:\n${logs.join('\n')}${errBuf}`));
    });
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /ready: outbound (\S+) inbound (\S+) admin (\S+)((?: upstream \S+)*)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      const upstreams: Record<string, string> = {};
      for (const u of (m[4] ?? '').trim().split(/\s+/)) {
        const mm = /^([^=]+)=(\S+)$/.exec(u);
        if (mm) upstreams[mm[1] as string] = mm[2] as string;
      }
      resolveStart({
        service: o.service,
        outbound: m[1] as string,
        inbound: m[2] as string,
        admin: m[3] as string,
        upstreams,
        proc,
        logs,
        records: () => logs.flatMap((l) => {
          const r = parse(l);
          return r === null ? [] : [r];
        }),
        waitForLog,
        exited,
        stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
          return exited;
        },
      });
    });
  });
}

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
