// One app joined to the local mesh with its own sidecar (the machinery of `mycel run`, also used by `mycel up --demo`):
// a join token (which pins the mesh root), the sidecar on free loopback ports getting its certificate from the mesh CA,
// then the app with HTTP_PROXY pointing at the sidecar; stopping is the other way round: the app first, then the
// sidecar drains.

import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startApp, type AppProcess } from './app-process.js';
import { startMycelChild, type MycelChild } from './mycel-child.js';

/** How the member reaches the control plane: its URL and a way to get a join token (the API, with the admin token). */
export interface MeshAccess {
  url: string;
  joinToken(service: string, namespace: string): Promise<string>;
}

export interface MemberOptions {
  service: string;
  namespace: string;
  /** The port the app listens on (the sidecar forwards inbound requests there). */
  appPort: number;
  /** `NAME=PORT` (or NAME=HOST:PORT, NAME:SERVICEPORT=...): local ports that lead to one service. Port 0: any. */
  upstreams: readonly string[];
  labels: Readonly<Record<string, string>>;
  /** The local mesh's state directory (.mycel): tokens/, proxies/ (each sidecar's key and certificate), logs/. */
  stateDir: string;
  mesh: MeshAccess;
  /** Names this instance's log files and sidecar state (default: SERVICE, or SERVICE-VERSION with a version label). */
  instance?: string;
  sidecarTimeoutMs?: number;
}

export interface SidecarAddresses {
  outbound: string;
  inbound: string;
  admin: string;
  /** Service name -> host:port of its upstream binding. */
  upstreams: Record<string, string>;
}

export interface AppOptions {
  command: string;
  args: readonly string[];
  /** Added to this process's environment (after the mesh's variables, so a caller may override them). */
  env?: Record<string, string>;
  cwd?: string;
  /** 'inherit' (the terminal) or 'log' (a file under logs/). */
  output: 'inherit' | 'log';
  graceMs: number;
}

const READY = /ready: outbound (\S+) inbound (\S+) admin (\S+)((?: upstream \S+)*)\n/;
/** A sidecar drains within its MeshConfig drain timeout (30 s by default); past this it is killed. */
const SIDECAR_STOP_BOUND_MS = 35_000;
export const LOOPBACK_NO_PROXY = 'localhost,127.0.0.1,::1';

function parseUpstreams(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const u of text.trim().split(/\s+/)) {
    const m = /^([^=]+)=(\S+)$/.exec(u);
    if (m) out[m[1] as string] = m[2] as string;
  }
  return out;
}

/** MYCEL_UPSTREAM_<NAME>: the service name in capitals, other characters as "_". */
export function upstreamVariable(service: string): string {
  return `MYCEL_UPSTREAM_${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** The environment that sends an app's HTTP clients through its sidecar and tells it its upstream bindings. */
export function meshEnvironment(service: string, a: SidecarAddresses): Record<string, string> {
  const proxy = `http://${a.outbound}`;
  const env: Record<string, string> = {
    HTTP_PROXY: proxy,
    http_proxy: proxy,
    NO_PROXY: LOOPBACK_NO_PROXY,
    no_proxy: LOOPBACK_NO_PROXY,
    MYCEL_SERVICE: service,
    MYCEL_OUTBOUND: a.outbound,
    MYCEL_ADMIN: a.admin,
  };
  for (const [name, addr] of Object.entries(a.upstreams)) env[upstreamVariable(name)] = addr;
  return env;
}

export class MeshMember {
  app: AppProcess | null = null;

  private constructor(
    readonly options: MemberOptions,
    readonly instance: string,
    readonly sidecar: MycelChild,
    readonly addresses: SidecarAddresses,
  ) {}

  /** Joins the mesh and starts the sidecar; resolves once it is ready (the app is started by startApp). */
  static async startSidecar(o: MemberOptions): Promise<MeshMember> {
    const instance = o.instance ?? (o.labels.version !== undefined ? `${o.service}-${o.labels.version}` : o.service);
    const logs = join(o.stateDir, 'logs');
    const tokens = join(o.stateDir, 'tokens');
    await Promise.all([mkdir(logs, { recursive: true }), mkdir(tokens, { recursive: true, mode: 0o700 })]);
    const tokenFile = join(tokens, `${o.namespace}-${o.service}.token`);
    await writeFile(tokenFile, (await o.mesh.joinToken(o.service, o.namespace)) + '\n', { mode: 0o600 });
    const args = [
      'proxy',
      '--service', o.service,
      '--namespace', o.namespace,
      '--app-port', String(o.appPort),
      '--control', o.mesh.url,
      '--token', tokenFile,
      '--state-dir', join(o.stateDir, 'proxies', `${o.namespace}-${instance}`),
      '--inbound', '127.0.0.1:0',
      '--outbound', '127.0.0.1:0',
      '--admin', '127.0.0.1:0',
      ...Object.entries(o.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
      ...o.upstreams.flatMap((u) => ['--upstream', u]),
    ];
    const sidecar = await startMycelChild({ name: `the ${instance} sidecar`, args, readyLine: READY, logFile: join(logs, `${instance}-sidecar.log`), timeoutMs: o.sidecarTimeoutMs ?? 30_000 });
    const m = sidecar.ready;
    const addresses = { outbound: m[1] as string, inbound: m[2] as string, admin: m[3] as string, upstreams: parseUpstreams(m[4] ?? '') };
    return new MeshMember(o, instance, sidecar, addresses);
  }

  get appLogFile(): string {
    return join(this.options.stateDir, 'logs', `${this.instance}.log`);
  }

  /** Starts the app with HTTP_PROXY (and http_proxy) = the sidecar's outbound listener, loopback left direct. */
  async startApp(a: AppOptions): Promise<AppProcess> {
    let output: 'inherit' | { stdout: number; stderr: number } = 'inherit';
    let close = async () => {};
    if (a.output === 'log') {
      const file = await open(this.appLogFile, 'a');
      output = { stdout: file.fd, stderr: file.fd };
      close = () => file.close();
    }
    try {
      this.app = startApp({
        command: a.command,
        args: a.args,
        env: { ...process.env, ...meshEnvironment(this.options.service, this.addresses), ...a.env },
        ...(a.cwd !== undefined ? { cwd: a.cwd } : {}),
        output,
        graceMs: a.graceMs,
      });
    } finally {
      // The child has its own copy of the descriptor.
      await close();
    }
    return this.app;
  }

  /** The app first (SIGTERM, SIGKILL after its grace period), then the sidecar drains. Resolves with the app's exit code. */
  async stop(): Promise<number | undefined> {
    const code = await this.app?.stop();
    await this.sidecar.stop(SIDECAR_STOP_BOUND_MS);
    return code;
  }
}
