// Test harness for load balancing and health: several instances of service `api`, each a real sidecar in front of
// its own app, and one `web` sidecar whose --config lists them (with labels) plus a TrafficPolicy; the config can be
// rewritten while it runs. `spread` sends requests through web and counts which instance answered.

import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { MESH_AND_WEB as MESH, portOf, startSidecar, type SidecarProcess } from './sidecars.js';

export interface FleetInstance {
  appPort: number;
  /** Endpoint labels in web's config (version, zone). */
  labels?: Record<string, string>;
}

export interface FleetOptions {
  instances: FleetInstance[];
  /** appProtocol of api's port. */
  protocol?: 'http' | 'grpc';
  /** YAML documents added to web's config (a TrafficPolicy for api). */
  policy?: string;
  /** Indexes of the instances web's first config lists (default: all). */
  listed?: number[];
  /** Labels of the web sidecar (`--label zone=a`). */
  webLabels?: Record<string, string>;
}

export interface Fleet {
  dir: string;
  web: SidecarProcess;
  apis: SidecarProcess[];
  /** Rewrites web's config (another policy, or only some instances) and waits until web applied it. */
  reconfigure(change: { policy?: string; instances?: number[] }): Promise<void>;
  /** Web's Prometheus text. */
  metrics(): Promise<string>;
  close(): Promise<void>;
}


function apiDoc(protocol: string, endpoints: Array<{ port: number; labels: Record<string, string> }>): string {
  const labels = (l: Record<string, string>) => Object.entries(l).map(([k, v]) => `${k}: ${v}`).join(', ');
  const eps = endpoints.map((e) => `{ address: 127.0.0.1, port: ${e.port}, labels: { ${labels(e.labels)} } }`).join(', ');
  return `---\napiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: api }\nspec: { ports: [ { port: 80, appProtocol: ${protocol} } ], endpoints: [ ${eps} ] }\n`;
}

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-fleet-'));
  await writeDevCertificates(dir, { services: ['web', 'api'] });
  const protocol = o.protocol ?? 'http';
  const apiConfig = join(dir, 'api.yaml');
  await writeFile(apiConfig, MESH + apiDoc(protocol, []));
  const apis: SidecarProcess[] = [];
  const stopAll = () => Promise.all(apis.map((a) => a.stop('SIGKILL')));
  try {
    const started = await Promise.all(o.instances.map((i) => startSidecar({ dir, service: 'api', appPort: i.appPort, configFiles: [apiConfig] })));
    apis.push(...started);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const endpoints = apis.map((a, i) => ({ port: portOf(a.inbound), labels: { instance: `i${i}`, ...(o.instances[i]?.labels ?? {}) } }));
  const webConfig = join(dir, 'web.yaml');
  let policy = o.policy ?? '';
  let chosen = o.listed ?? endpoints.map((_, i) => i);
  const render = () => MESH + apiDoc(protocol, chosen.map((i) => endpoints[i]!)) + (policy ? `---\n${policy}` : '');
  await writeFile(webConfig, render());
  let web: SidecarProcess;
  try {
    web = await startSidecar({ dir, service: 'web', appPort: 1, configFiles: [webConfig], upstreams: ['api=127.0.0.1:0'], extraArgs: Object.entries(o.webLabels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]) });
  } catch (err) {
    await stopAll();
    throw err;
  }
  let version = 1;
  return {
    dir,
    web,
    apis,
    async reconfigure(change) {
      if (change.policy !== undefined) policy = change.policy;
      if (change.instances !== undefined) chosen = change.instances;
      await writeFile(webConfig, render());
      version++;
      const want = version;
      await web.waitForLog((r) => r.msg === 'config applied' && r.version === want, 10_000);
    },
    async metrics() {
      return (await get(web.admin, '/metrics', {})).body;
    },
    async close() {
      await Promise.all([web.stop('SIGKILL'), stopAll()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  instance: string | undefined;
  error: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const agents = new WeakMap<SidecarProcess, http.Agent>();

/** One request through web's outbound listener to api (keep-alive, so many requests stay cheap). */
export function send(f: Fleet, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  let agent = agents.get(f.web);
  if (agent === undefined) agents.set(f.web, (agent = new http.Agent({ keepAlive: true, maxSockets: 16 })));
  return get(f.web.outbound, path, { host: 'api', ...headers }, agent).then((r) => ({
    status: r.status,
    instance: r.headers['x-instance'] as string | undefined,
    error: r.headers['x-mycel-error'] as string | undefined,
    headers: r.headers,
    body: r.body,
  }));
}

/** Sends `n` requests, `concurrency` at a time; returns how many each instance answered and every answer. */
export async function spread(f: Fleet, n: number, o: { path?: string; concurrency?: number; headers?: (i: number) => Record<string, string> } = {}): Promise<{ byInstance: Map<string, number>; answers: Answer[] }> {
  const answers: Answer[] = [];
  const byInstance = new Map<string, number>();
  const concurrency = o.concurrency ?? 1;
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const a = await send(f, o.path ?? `/r${i}`, o.headers?.(i) ?? {});
      answers.push(a);
      const k = a.instance ?? `error:${a.error ?? a.status}`;
      byInstance.set(k, (byInstance.get(k) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { byInstance, answers };
}

export function closeAgents(f: Fleet): void {
  agents.get(f.web)?.destroy();
}

function get(addr: string, path: string, headers: Record<string, string>, agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const host = addr.slice(0, addr.lastIndexOf(':'));
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, headers, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    req.end();
  });
}
