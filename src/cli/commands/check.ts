// `mycel check`: pre-flight and live checks of the local mesh, each failure with a one-line fix (after `linkerd
// check`): control plane reachable and ready, store, proxies connected and on their latest config, certificates,
// ports, clock. Exit 0 when nothing failed (warnings allowed), 1 otherwise.

import type { ProxyStatus } from '../../api/v1alpha1/control-api.js';
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { certificateExpiries, humanDuration } from '../../local/cert-expiry.js';
import { caExpiryState, leafExpiryState } from '../ca-expiry.js';
import { canListen } from '../../local/ports.js';
import { Progress, type Mark } from '../../local/progress.js';
import { controlClient, type ClientFlags, type ControlClient } from '../control-client.js';
import { CliError, EXIT_FAILURE } from '../exit.js';

interface CheckFlags extends ClientFlags {
  dir: string;
}


interface CaStatus {
  roots: Array<{ fingerprint: string; notAfter: number; active: boolean }>;
  intermediates: Array<{ fingerprint: string; root: string; notAfter: number; replica: string }>;
  /** Each replica's API server certificate (older control planes do not report them). */
  apiCertificates?: Array<{ replica: string; url: string; notAfter: number; issuedAt: number }>;
}

interface EndpointItem {
  address: string;
  port: number;
  source: string;
  proxyId?: string;
  leaseExpires?: string;
  streamOpen?: boolean;
}

/** The ports a local mesh uses by default: the control plane, and a sidecar's admin, outbound and inbound listeners. */
const DEFAULT_PORTS: ReadonlyArray<[number, string]> = [
  [7400, 'control plane (mycel up, mycel control)'],
  [15000, 'sidecar admin (mycel proxy default)'],
  [15001, 'sidecar outbound (mycel proxy default)'],
  [15006, 'sidecar inbound (mycel proxy default)'],
];
const CLOCK_WARN_MS = 2000;
const CLOCK_FAIL_MS = 60_000;
const TIMEOUT_MS = 5000;

class Report {
  failed = 0;
  warned = 0;
  constructor(private readonly progress: Progress) {}
  section(title: string): void {
    process.stdout.write(`\n${title}\n${'-'.repeat(title.length)}\n`);
  }
  add(mark: Mark, label: string, detail = '', fix?: string): void {
    if (mark === 'fail') this.failed++;
    if (mark === 'warn') this.warned++;
    this.progress.line(mark, label, detail, fix);
  }
}

async function probe(client: ControlClient, url: string): Promise<{ status: number; text: string; date: string | null; midpoint: number } | Error> {
  const sent = Date.now();
  try {
    const res = await client.fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const text = await res.text();
    return { status: res.status, text, date: res.headers.get('date'), midpoint: (sent + Date.now()) / 2 };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return new Error(cause?.code ?? (err as Error).message);
  }
}

async function checkControlPlane(r: Report, client: ControlClient, source: string): Promise<boolean> {
  r.section('control plane');
  const health = await probe(client, `${client.url}/healthz`);
  if (health instanceof Error || health.status !== 200) {
    r.add('fail', 'control plane reachable', `${client.url} (${source}): ${health instanceof Error ? health.message : `HTTP ${health.status}`}`, 'start it with `mycel up` (or `mycel control`), or point to it with --control URL or MYCEL_CONTROL');
    return false;
  }
  r.add('ok', 'control plane reachable', `${client.url} (${source})`);
  const ready = await probe(client, `${client.url}/readyz`);
  if (ready instanceof Error || ready.status !== 200) {
    r.add('fail', 'control plane ready', ready instanceof Error ? ready.message : ready.text.trim(), 'wait for it to load its store; if it stays unready, see its log (.mycel/logs/control.log under mycel up)');
    return false;
  }
  r.add('ok', 'control plane ready', 'store loaded, API and config streams served');
  const metrics = await probe(client, `${client.url}/metrics`);
  const errors = metrics instanceof Error ? [] : [...metrics.text.matchAll(/^mycel_control_store_errors_total\{reason="([^"]+)"\} (\d+)/gm)].filter((m) => Number(m[2]) > 0);
  if (errors.length > 0) r.add('warn', 'store healthy', `store errors so far: ${errors.map((m) => `${m[1]} ${m[2]}`).join(', ')}`, 'see the control plane\'s log; with etcd, check the cluster\'s health (etcdctl endpoint health)');
  else r.add('ok', 'store healthy', 'no store errors');
  if (health.date !== null) {
    const skew = Date.parse(health.date) - health.midpoint;
    // The Date header has a resolution of one second.
    const abs = Math.max(0, Math.abs(skew) - 1000);
    const detail = `this machine's clock and the control plane's differ by ${(abs / 1000).toFixed(0)} s or less`;
    if (abs > CLOCK_FAIL_MS) r.add('fail', 'clock in sync', detail, 'synchronise the clocks (e.g. timedatectl set-ntp true): certificates are valid from a point in time');
    else if (abs > CLOCK_WARN_MS) r.add('warn', 'clock in sync', detail, 'synchronise the clocks (e.g. timedatectl set-ntp true)');
    else r.add('ok', 'clock in sync', 'with the control plane\'s');
  }
  return true;
}

async function checkProxies(r: Report, client: ControlClient): Promise<void> {
  r.section('proxies');
  let proxies: { items: ProxyStatus[]; unreachableReplicas?: string[] };
  try {
    const res = await client.request<typeof proxies>('GET', '/api/v1/proxies');
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    proxies = res.body;
  } catch (err) {
    r.add('fail', 'admin API usable', (err as Error).message.split('\n')[0] as string, 'pass --token FILE with the admin token (DIR/admin-token), or set MYCEL_TOKEN');
    return;
  }
  for (const replica of proxies.unreachableReplicas ?? []) r.add('fail', `replica ${replica} reachable`, 'its proxies are not listed', 'see that replica\'s log, or remove it if it is gone for good');
  if (proxies.items.length === 0) r.add('ok', 'proxies', 'none connected (start apps with `mycel run`, or the demo with `mycel up --demo`)');
  for (const p of [...proxies.items].sort((a, b) => `${a.namespace}/${a.service}`.localeCompare(`${b.namespace}/${b.service}`))) {
    const who = `${p.namespace}/${p.service} (${p.proxyId})`;
    if (!p.connected) r.add('fail', who, `not connected since ${p.lastContact}`, 'restart its sidecar; it keeps serving its last good config meanwhile');
    else if (p.heldBack !== undefined) r.add('warn', who, `the control plane's warm-up holds its next config back (${p.heldBack.reason}); it serves version ${p.ackedVersion ?? 'its own'} meanwhile`, `wait up to ${Math.ceil(p.heldBack.releaseInMs / 1000)} s: the config goes out once the endpoints are back or the warm-up ends (docs/control-plane.md)`);
    else if (p.state === 'ACK') r.add('ok', who, `on its latest config, version ${p.ackedVersion}`);
    else if (p.state === 'NACK') r.add('fail', who, `rejected version ${p.nack?.version}: ${p.nack?.reason}`, 'correct the resource it names and apply again; it keeps serving its last good config');
    else if (p.state === 'PENDING') r.add('warn', who, `has not acknowledged version ${p.sentVersion} yet`, 'run mycel check again in a moment; if it stays, see the sidecar\'s log');
    else r.add('warn', who, 'no config sent yet', 'run mycel check again in a moment');
  }
  // Endpoints whose sidecar has no open stream: registered, still in callers' views until their lease lapses.
  const services = new Set(proxies.items.map((p) => `${p.namespace}/${p.service}`));
  const stored = await client.request<{ items?: Array<{ metadata: { name: string; namespace?: string } }> }>('GET', '/api/v1/resources/service');
  for (const s of stored.body.items ?? []) services.add(`${s.metadata.namespace ?? 'default'}/${s.metadata.name}`);
  let orphans = 0;
  for (const svc of [...services].sort()) {
    const eps = await client.request<{ items?: EndpointItem[] }>('GET', `/api/v1/endpoints/${svc}`);
    for (const e of eps.body.items ?? []) {
      if (e.source !== 'registered' || e.streamOpen !== false) continue;
      orphans++;
      r.add('fail', `${svc} endpoint ${e.address}:${e.port}`, `registered by ${e.proxyId ?? '?'}, whose config stream is closed; callers still use it until ${e.leaseExpires ?? 'its lease lapses'}`, 'restart its sidecar, or wait for the lease to lapse');
    }
  }
  if (orphans === 0) r.add('ok', 'registered endpoints', `every endpoint of ${services.size} service${services.size === 1 ? '' : 's'} has its proxy connected`);
}

/** The mesh CA's roots and intermediates (under 30 days: warning) and every proxy's leaf (under a quarter of its lifetime left: warning). */
async function checkMeshCa(r: Report, client: ControlClient): Promise<void> {
  r.section('mesh CA (warns: root or intermediate under 30 days, leaf or API certificate under 1/4 of its lifetime left)');
  const ca = await client.request<CaStatus>('GET', '/api/v1/ca').catch(() => undefined);
  if (ca === undefined || ca.status !== 200) {
    r.add('warn', 'mesh CA', `status not available${ca ? ` (HTTP ${ca.status})` : ''}`, 'see the control plane\'s log');
    return;
  }
  const now = Date.now();
  const rotateFix = 'rotate the mesh CA: mycel ca rotate (docs/security.md)';
  for (const [role, list] of [['root', ca.body.roots], ['intermediate', ca.body.intermediates]] as const) {
    for (const c of list) {
      const label = `${role} ${c.fingerprint.slice(0, 16)}${'active' in c && c.active ? ' (active)' : ''}`;
      const state = caExpiryState(c.notAfter, now);
      const when = new Date(c.notAfter).toISOString();
      if (state === 'expired') r.add('fail', label, `expired ${humanDuration(now - c.notAfter)} ago (${when})`, rotateFix);
      else if (state === 'warn') r.add('warn', label, `expires in ${humanDuration(c.notAfter - now)} (${when})`, role === 'root' ? rotateFix : 'restart the replica that holds it: it makes a new intermediate when under 7 days are left');
      else r.add('ok', label, `valid for ${humanDuration(c.notAfter - now)}`);
    }
  }
  for (const a of ca.body.apiCertificates ?? []) {
    // Renewed at half-life like a leaf: under a quarter left means renewals have been failing for a while.
    const label = `API server certificate of replica ${a.replica}`;
    const state = leafExpiryState(a.notAfter, a.issuedAt, now);
    const fix = `see replica ${a.replica}'s log for "API server certificate renewal failed"; restarting it issues a new one`;
    if (state === 'expired') r.add('fail', label, `expired ${humanDuration(now - a.notAfter)} ago: clients cannot reach ${a.url}`, fix);
    else if (state === 'warn') r.add('warn', label, `expires in ${humanDuration(a.notAfter - now)} and has not been renewed`, fix);
    else r.add('ok', label, `valid for ${humanDuration(a.notAfter - now)}`);
  }
  const proxies = await client.request<{ items: ProxyStatus[] }>('GET', '/api/v1/proxies').catch(() => undefined);
  let leaves = 0;
  for (const p of proxies?.body.items ?? []) {
    if (p.certNotAfter === undefined || p.certIssuedAt === undefined) continue;
    leaves++;
    const who = `${p.namespace}/${p.service} (${p.proxyId}) certificate`;
    const state = leafExpiryState(p.certNotAfter, p.certIssuedAt, now);
    if (state === 'expired') r.add('fail', who, `expired ${humanDuration(now - p.certNotAfter)} ago`, 'see the sidecar\'s log for the renewal errors; restart it with a new join token if its certificate cannot be renewed');
    else if (state === 'warn') r.add('warn', who, `expires in ${humanDuration(p.certNotAfter - now)} and has not been renewed`, 'see the sidecar\'s log: it renews at half-life and retries while the control plane is away');
  }
  r.add('ok', 'workload certificates', `${leaves} proxies report a mesh certificate`);
}

async function checkCertificates(r: Report, dir: string): Promise<void> {
  const certsDir = join(dir, 'certs');
  r.section('certificates');
  const certs = await certificateExpiries(certsDir);
  if (certs.length === 0) {
    r.add('ok', 'certificates', `no development certificates in ${certsDir} (the mesh CA's are checked with the proxies)`);
    return;
  }
  const fix = 'mycel dev-certs --out ' + certsDir + ' SERVICE';
  const caFix = `delete ${join(certsDir, 'ca.crt')} and ca.key, then restart the mesh: a new development CA and certificates are made`;
  let ok = 0;
  for (const c of certs) {
    const isCa = c.file.endsWith('/ca.crt');
    if (c.state === 'unreadable') r.add('fail', c.file, `unreadable: ${c.problem}`, isCa ? caFix : fix);
    else if (c.state === 'expired') r.add('fail', c.file, `${c.name} expired ${humanDuration(c.msLeft)} ago (${c.notAfter.toISOString()})`, isCa ? caFix : fix);
    else if (c.state === 'near-expiry') r.add('warn', c.file, `${c.name} expires in ${humanDuration(c.msLeft)} (${c.notAfter.toISOString()})`, isCa ? caFix : fix);
    else ok++;
  }
  const valid = certs.filter((c) => c.state === 'ok');
  if (ok > 0) r.add('ok', `${ok} certificate${ok === 1 ? '' : 's'} valid`, `the first to expire: ${valid[0]!.file.slice(certsDir.length + 1)} in ${humanDuration(valid[0]!.msLeft)}`);
}

async function checkPorts(r: Report): Promise<void> {
  r.section('ports (no mesh answers, so its default ports should be free)');
  for (const [port, what] of DEFAULT_PORTS) {
    if (await canListen(port)) r.add('ok', `127.0.0.1:${port} free`, what);
    else r.add('fail', `127.0.0.1:${port} free`, `in use: ${what} cannot listen there`, `stop what listens there (ss -ltnp 'sport = :${port}' names it), or pass another address (--listen / --admin / --outbound / --inbound)`);
  }
}

export function registerCheckCommand(program: Command): void {
  program
    .command('check')
    .description('check the local mesh: control plane, store, proxies, certificates, ports, clock; with a fix for each failure')
    .option('--dir <dir>', 'the local mesh\'s state directory', '.mycel')
    .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, DIR/control.json, 127.0.0.1:7400)')
    .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or DIR/admin-token)')
    .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)')
    .action(async (flags: CheckFlags) => {
      const stateFile = join(flags.dir, 'control.json');
      const source = flags.control !== undefined ? 'from --control' : process.env.MYCEL_CONTROL !== undefined ? 'from MYCEL_CONTROL' : existsSync(stateFile) ? `from ${stateFile}` : 'the default';
      let client: ControlClient;
      try {
        client = controlClient({ ...flags, stateDir: flags.dir });
      } catch (err) {
        throw new CliError((err as Error).message, EXIT_FAILURE);
      }
      const report = new Report(new Progress());
      process.stdout.write('mycel check\n');
      const up = await checkControlPlane(report, client, source);
      if (up) {
        await checkProxies(report, client);
        await checkMeshCa(report, client);
      }
      await checkCertificates(report, flags.dir);
      if (!up) await checkPorts(report);
      process.stdout.write(
        report.failed > 0
          ? `\n✗ ${report.failed} check${report.failed === 1 ? '' : 's'} failed${report.warned > 0 ? `, ${report.warned} warning${report.warned === 1 ? '' : 's'}` : ''}\n`
          : `\n✓ all checks passed${report.warned > 0 ? ` (${report.warned} warning${report.warned === 1 ? '' : 's'})` : ''}\n`,
      );
      process.exitCode = report.failed > 0 ? EXIT_FAILURE : 0;
    });
}
