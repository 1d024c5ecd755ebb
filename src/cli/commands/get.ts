// `mycel get KIND [NAME]`, `mycel get proxies`, `mycel get endpoints SERVICE` and `mycel delete KIND NAME`: read and
// remove what the control plane holds, as a table or as YAML/JSON.

import type { ProxyStatus } from '../../api/v1alpha1/control-api.js';
import type { Command } from 'commander';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { stringify } from 'yaml';
import { apiError, controlClient, createJoinToken, table, type ClientFlags } from '../control-client.js';
import { CliError, EXIT_USAGE } from '../exit.js';

interface GetFlags extends ClientFlags {
  output?: string;
  namespace: string;
}

type Resource = { kind: string; metadata: { name: string; namespace: string }; spec?: Record<string, unknown> };

function print(value: unknown, output: string | undefined): boolean {
  if (output === 'json') {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
    return true;
  }
  if (output === 'yaml') {
    process.stdout.write(stringify(value));
    return true;
  }
  if (output !== undefined && output !== 'wide') throw new CliError(`unknown output format "${output}": use yaml or json`, EXIT_USAGE);
  return false;
}

/** 42s, 17m, 5h: the width of a table column. */
function compact(s: number): string {
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

function ago(iso: string | null): string {
  if (iso === null) return '-';
  return compact(Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000)));
}


/** Time left on a proxy's mesh certificate ("-" for a proxy with certificate files). */
function certLeft(notAfter: number | undefined): string {
  if (notAfter === undefined) return '-';
  const s = Math.round((notAfter - Date.now()) / 1000);
  return s <= 0 ? 'expired' : compact(s);
}

async function getProxies(flags: GetFlags): Promise<void> {
  const { status, body } = await controlClient(flags).request<{ items: ProxyStatus[]; revision: number; replica: string }>('GET', '/api/v1/proxies');
  if (status !== 200) throw apiError(status, body, 'get proxies');
  if (print(body, flags.output)) return;
  const rows = body.items.map((p) => [
    `${p.namespace}/${p.service}`,
    p.proxyId,
    p.endpoint ? `${p.endpoint.address}:${p.endpoint.port}` : '-',
    String(p.sentVersion ?? '-'),
    p.state,
    ago(p.lastContact),
    certLeft(p.certNotAfter),
    p.nack ? `v${p.nack.version}: ${p.nack.reason}` : p.heldBack ? `warm-up holds the next config (${p.heldBack.reason}; at most ${compact(Math.ceil(p.heldBack.releaseInMs / 1000))} more)` : '',
  ]);
  process.stdout.write(table(['SERVICE', 'PROXY', 'ENDPOINT', 'VERSION', 'STATE', 'LAST CONTACT', 'CERT EXPIRES IN', 'REASON'], rows));
  process.stdout.write(`(${body.items.length} proxies on replica ${body.replica}, store revision ${body.revision})\n`);
}

async function getEndpoints(service: string | undefined, flags: GetFlags): Promise<void> {
  if (service === undefined) throw new CliError('usage: mycel get endpoints SERVICE', EXIT_USAGE);
  const { status, body } = await controlClient(flags).request<{ items: Array<{ address: string; port: number; labels: Record<string, string>; source: string; ready: boolean; proxyId?: string; leaseExpires?: string }> }>(
    'GET',
    `/api/v1/endpoints/${encodeURIComponent(flags.namespace)}/${encodeURIComponent(service)}`,
  );
  if (status !== 200) throw apiError(status, body, `get endpoints ${service}`);
  if (print(body, flags.output)) return;
  const rows = body.items.map((e) => [
    `${e.address}:${e.port}`,
    Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
    e.source,
    e.ready ? 'yes' : 'no',
    e.proxyId ?? '-',
  ]);
  process.stdout.write(table(['ENDPOINT', 'LABELS', 'SOURCE', 'READY', 'PROXY'], rows));
}

function summary(r: Resource): string {
  const spec = r.spec ?? {};
  switch (r.kind) {
    case 'Service':
      return `ports ${((spec.ports as Array<{ port: number; appProtocol?: string }>) ?? []).map((p) => `${p.port}${p.appProtocol ? '/' + p.appProtocol : ''}`).join(',')}`;
    default: {
      const parents = (spec.parentRefs as Array<{ name: string }> | undefined)?.map((p) => p.name);
      const target = (spec.targetRef as { name?: string } | undefined)?.name;
      return parents ? `parents ${parents.join(',')}` : target ? `target ${target}` : '';
    }
  }
}

async function getResources(kind: string, name: string | undefined, flags: GetFlags): Promise<void> {
  const client = controlClient(flags);
  const path = name === undefined ? `/api/v1/resources/${encodeURIComponent(kind)}` : `/api/v1/resources/${encodeURIComponent(kind)}/${encodeURIComponent(flags.namespace)}/${encodeURIComponent(name)}`;
  const { status, body } = await client.request<{ items?: Resource[] } & Resource>('GET', path);
  if (status === 404) throw new CliError((body as unknown as { message?: string }).message ?? 'not found');
  if (status !== 200) throw apiError(status, body, `get ${kind}`);
  if (print(name === undefined ? body.items : body, flags.output)) return;
  const items = name === undefined ? (body.items ?? []) : [body as Resource];
  if (items.length === 0) {
    process.stdout.write(`No ${kind} found.\n`);
    return;
  }
  process.stdout.write(table(['KIND', 'NAMESPACE', 'NAME', 'SUMMARY'], items.map((r) => [r.kind, r.metadata.namespace, r.metadata.name, summary(r)])));
}

export function registerGetCommand(program: Command): void {
  const common = (c: Command) =>
    c
      .option('-n, --namespace <ns>', 'namespace', 'default')
      .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, .mycel/control.json, 127.0.0.1:7400)')
      .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or .mycel/admin-token)')
      .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)');
  common(
    program
      .command('get')
      .description('show resources, proxies (config version, ACK/NACK, last contact) or a service\'s endpoints')
      .argument('<kind>', 'a resource kind (service, httproute, ...), proxies, or endpoints')
      .argument('[name]', 'one object (for endpoints: the service)')
      .option('-o, --output <format>', 'yaml or json'),
  ).action(async (kind: string, name: string | undefined, flags: GetFlags) => {
    const k = kind.toLowerCase();
    if (k === 'proxies' || k === 'proxy') return getProxies(flags);
    if (k === 'endpoints' || k === 'endpoint' || k === 'ep') return getEndpoints(name, flags);
    return getResources(kind, name, flags);
  });
  common(
    program
      .command('delete')
      .description('delete a resource from the control plane')
      .argument('<kind>', 'a resource kind')
      .argument('<name>', 'its name'),
  ).action(async (kind: string, name: string, flags: GetFlags) => {
    const { status, body } = await controlClient(flags).request<{ deleted?: { kind: string; name: string }; message?: string }>(
      'DELETE',
      `/api/v1/resources/${encodeURIComponent(kind)}/${encodeURIComponent(flags.namespace)}/${encodeURIComponent(name)}`,
    );
    if (status === 404) throw new CliError(body.message ?? `${kind} ${name} not found`);
    if (status !== 200 || !body.deleted) throw apiError(status, body, `delete ${kind} ${name}`);
    process.stdout.write(`${body.deleted.kind.toLowerCase()}/${body.deleted.name} deleted\n`);
  });
  common(
    program
      .command('token')
      .description('join tokens for proxies on other hosts')
      .argument('<action>', 'create')
      .requiredOption('--service <name>', 'the service the token lets a proxy register for and get a certificate as')
      .option('--ttl <duration>', 'the token expires after this long, e.g. 10m or 24h (default: never)')
      .option('--single-use', 'the token obtains one certificate only (the proxy then renews with its certificate); expires in 24 h unless --ttl says otherwise'),
  ).action(async (action: string, flags: GetFlags & { service: string; ttl?: string; singleUse?: boolean }) => {
    if (action !== 'create') throw new CliError(`unknown token action "${action}": use create`, EXIT_USAGE);
    let ttlSeconds: number | undefined;
    if (flags.ttl !== undefined) {
      const ms = parseDuration(flags.ttl);
      if (ms === undefined || ms < 1000) throw new CliError(`invalid --ttl "${flags.ttl}": expected a duration of at least 1s, e.g. 10m`, EXIT_USAGE);
      ttlSeconds = Math.ceil(ms / 1000);
    }
    const o = { ...(ttlSeconds !== undefined ? { ttlSeconds } : {}), ...(flags.singleUse === true ? { singleUse: true } : {}) };
    process.stdout.write((await createJoinToken(controlClient(flags), flags.service, flags.namespace, o)) + '\n');
  });
}
