// Test harness for the control plane: a real `mycel control` process on 127.0.0.1 (file store in a temp dir, or
// etcd), its admin token, join tokens, the HTTPS API (verified against the mesh root it writes to ca.pem), and the CLI
// pointed at it. The test process's global fetch trusts the roots of every control plane started here.

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { Agent, setGlobalDispatcher } from 'undici';
import type { TestApp } from './apps.js';
import { request, run } from './http.js';
import { MYCEL_BIN, spawnMycel, type MycelProcess } from './mycel-process.js';

export interface ControlProcess extends MycelProcess {
  url: string;
  replica: string;
  stateDir: string;
  adminTokenFile: string;
  adminToken: string;
  /** The mesh roots that verify the API (`<stateDir>/ca.pem`), or undefined with --insecure-http. */
  caFile: string | undefined;
  /** Calls the API with the admin token; returns status and parsed JSON (or text). */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** Runs `mycel ARGS --control URL --token ADMIN`; for apply/get/delete/token. */
  cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Writes a join token for a service to a file and returns its path. */
  joinTokenFile(service: string, namespace?: string): Promise<string>;
}

export interface StartControlOptions {
  stateDir: string;
  /** Default: file:<stateDir>. */
  store?: string;
  listen?: string;
  lease?: string;
  env?: Record<string, string>;
  /** More `mycel control` flags (e.g. --stats-interval 500ms). */
  extraArgs?: string[];
}

const trusted = new Set<string>();

/** Lets the global fetch (and undici) of this test process verify a control plane whose roots are `pem`. */
export function trustMeshRoots(pem: string): void {
  if (trusted.has(pem)) return;
  trusted.add(pem);
  setGlobalDispatcher(new Agent({ connect: { ca: [...rootCertificates, ...trusted] } }));
}

export async function startControl(o: StartControlOptions): Promise<ControlProcess> {
  const args = ['control', '--store', o.store ?? `file:${o.stateDir}`, '--state-dir', o.stateDir, '--listen', o.listen ?? '127.0.0.1:0', '--lease', o.lease ?? '10s', ...(o.extraArgs ?? [])];
  const { p, match } = await spawnMycel('control', args, /mycel control ready: (\S+) \(replica (\S+),/, { ...(o.env ? { env: o.env } : {}), timeoutMs: 30_000 });
  const url = match[1] as string;
  const adminTokenFile = join(o.stateDir, 'admin-token');
  const adminToken = (await readFile(adminTokenFile, 'utf8')).trim();
  const caFile = url.startsWith('https:') ? join(o.stateDir, 'ca.pem') : undefined;
  if (caFile !== undefined) trustMeshRoots(await readFile(caFile, 'utf8'));
  const admin = adminApi(url, adminToken);
  const api: typeof admin = async (method, path, body) => {
    // The roots change with a rotation (the control plane rewrites ca.pem).
    if (caFile !== undefined) trustMeshRoots(await readFile(caFile, 'utf8'));
    return admin(method, path, body);
  };
  return {
    ...p,
    url,
    replica: match[2] as string,
    stateDir: o.stateDir,
    adminTokenFile,
    adminToken,
    caFile,
    api,
    cli: (cliArgs, input) => run(process.execPath, [MYCEL_BIN, ...cliArgs, '--control', url, '--token', adminTokenFile, ...(caFile !== undefined ? ['--ca', caFile] : [])], input),
    async joinTokenFile(service, namespace = 'default') {
      const r = await api<{ token: string }>('POST', '/api/v1/tokens', { service, namespace });
      if (r.status !== 200) throw new Error(`token create failed: ${r.status} ${JSON.stringify(r.body)}`);
      const file = join(o.stateDir, `join-${namespace}-${service}.token`);
      await writeFile(file, r.body.token + '\n', { mode: 0o600 });
      return file;
    },
  };
}

/** The control-plane API at `url` with an admin token: returns status and parsed JSON (or text). */
export function adminApi(url: string, adminToken: string): <T = unknown>(method: string, path: string, body?: unknown) => Promise<{ status: number; body: T }> {
  return async <T,>(method: string, path: string, body?: unknown) => {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* text */
    }
    return { status: res.status, body: parsed as T };
  };
}

/** Polls `check` every 50 ms until it returns a value other than undefined, or fails after timeoutMs with `what`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The api and web Services of the control-plane tests (api first, so that tests can add fields after its ports). */
export const API_AND_WEB_SERVICES = `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 80, appProtocol: http } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: web }
spec:
  ports: [ { port: 80, appProtocol: http } ]
`;

/** Waits until web's upstream binding reaches the api app, and checks that api saw web's SPIFFE identity. */
export async function expectWebReachesApi(webUpstream: string, app: TestApp): Promise<void> {
  const reply = await eventually('a reply through web -> api', async () => {
    const r = await request(webUpstream, { path: '/hello' });
    return r.status === 200 ? r : undefined;
  });
  assert.match(reply.body.toString(), /hello GET \/hello/);
  assert.equal(app.seen.at(-1)?.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web');
}
/** A MeshConfig (trust domain mycel.local) with the api and web Services: the base config of control-plane tests. */
export const MESH_API_AND_WEB = `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local }
---
${API_AND_WEB_SERVICES}`;

/**
 * Copies a replica's root key files into another replica's state dir, so that both can issue (and so both get an API
 * certificate): the "same root on every replica" set-up of docs/security.md.
 */
export async function shareRootKey(fromStateDir: string, toStateDir: string): Promise<void> {
  const { copyFile, mkdir, readdir } = await import('node:fs/promises');
  await mkdir(join(toStateDir, 'ca'), { recursive: true, mode: 0o700 });
  for (const f of await readdir(join(fromStateDir, 'ca'))) {
    if (f.startsWith('root-')) await copyFile(join(fromStateDir, 'ca', f), join(toStateDir, 'ca', f));
  }
}
