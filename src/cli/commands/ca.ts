// `mycel ca`: the mesh CA's status and its root rotation, as separate steps (add-root, activate, remove-root) or all
// at once (rotate), which waits between the steps until every proxy is ready for the next one.

import type { Command } from 'commander';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { apiError, controlClient, table, type ClientFlags, type ControlClient } from '../control-client.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../exit.js';

interface CaFlags extends ClientFlags {
  output?: string;
  timeout?: string;
}

interface CaStatus {
  activeRoot: string;
  roots: Array<{ fingerprint: string; notAfter: number; addedAt: string; active: boolean; proxiesTrusting: number; leavesUnder: number }>;
  intermediates: Array<{ fingerprint: string; root: string; notAfter: number; replica: string }>;
  workload: { trustDomain: string; lifetimeSeconds: number; renewAt: number };
}

const short = (fp: string): string => fp.slice(0, 16);
const say = (line: string): void => void process.stdout.write(line + '\n');

async function status(client: ControlClient): Promise<CaStatus> {
  const { status: code, body } = await client.request<CaStatus>('GET', '/api/v1/ca');
  if (code !== 200) throw apiError(code, body, 'reading the mesh CA');
  return body;
}

async function addRoot(client: ControlClient): Promise<string> {
  const { status: code, body } = await client.request<{ added?: { fingerprint: string } }>('POST', '/api/v1/ca/roots');
  if (code !== 200 || body.added === undefined) throw apiError(code, body, 'adding a root');
  return body.added.fingerprint;
}

/** One try of a step that the control plane may refuse while proxies catch up (409): the reason, or null when done. */
async function tryStep(client: ControlClient, method: string, path: string, body: unknown, what: string): Promise<string | null> {
  const r = await client.request<{ message?: string }>(method, path, body);
  if (r.status === 200) return null;
  if (r.status === 409) return r.body.message ?? 'not yet';
  throw apiError(r.status, r.body, what);
}

/** Retries a step every second until it goes through or the deadline passes, printing the reason when it changes. */
async function stepUntilDone(client: ControlClient, method: string, path: string, body: unknown, what: string, deadline: number): Promise<void> {
  let last = '';
  for (;;) {
    const reason = await tryStep(client, method, path, body, what);
    if (reason === null) return;
    if (reason !== last) say(`  waiting: ${reason}`);
    last = reason;
    if (Date.now() > deadline) throw new CliError(`${what} did not happen in time: ${reason}\n  fix: see the proxies named (mycel get proxies, their logs), then run the remaining steps by hand (mycel ca activate / remove-root)`, EXIT_FAILURE);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export function registerCaCommand(program: Command): void {
  const ca = program.command('ca').description('the mesh CA: status, and root rotation without failed handshakes');
  const common = (c: Command) =>
    c
      .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, .mycel/control.json, 127.0.0.1:7400)')
      .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or .mycel/admin-token)')
      .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)');
  common(ca.command('status').description('roots, intermediates, and how many proxies trust each root and hold leaves under it').option('-o, --output <format>', 'json')).action(async (flags: CaFlags) => {
    const s = await status(controlClient(flags));
    if (flags.output === 'json') return say(JSON.stringify(s, null, 2));
    say(table(['ROOT', 'ACTIVE', 'EXPIRES', 'PROXIES TRUSTING', 'LEAVES UNDER'], s.roots.map((r) => [short(r.fingerprint), r.active ? 'yes' : '', new Date(r.notAfter).toISOString(), String(r.proxiesTrusting), String(r.leavesUnder)])));
    say(table(['INTERMEDIATE', 'ROOT', 'EXPIRES', 'REPLICA'], s.intermediates.map((i) => [short(i.fingerprint), short(i.root), new Date(i.notAfter).toISOString(), i.replica])));
    say(`workload certificates: trust domain ${s.workload.trustDomain}, lifetime ${s.workload.lifetimeSeconds} s, renewed at ${Math.round(s.workload.renewAt * 100)}% of it`);
  });
  common(ca.command('add-root').description('step 1: add a new root to the trust bundle (pushed to every proxy); issuance stays with the active root')).action(async (flags: CaFlags) => {
    const fp = await addRoot(controlClient(flags));
    say(`root ${short(fp)} added to the trust bundle\nnext: mycel ca activate ${short(fp)} (refused until every proxy trusts it)`);
  });
  common(ca.command('activate').description('step 2: issue new certificates under this root; proxies renew early onto it').argument('<root>', 'fingerprint (or its first 16 digits)').option('--force', 'even if some proxies do not trust it yet (their peers would refuse the new leaves)')).action(async (root: string, flags: CaFlags & { force?: boolean }) => {
    const r = await controlClient(flags).request<{ activeRoot?: string; message?: string }>('POST', '/api/v1/ca/activate', { root, ...(flags.force === true ? { force: true } : {}) });
    if (r.status !== 200) throw apiError(r.status, r.body, `activating root ${root}`);
    say(`new certificates come from root ${short(r.body.activeRoot ?? root)}\nnext: mycel ca remove-root OLD (refused until no proxy holds a certificate from it)`);
  });
  common(ca.command('remove-root').description('step 3: remove a root from the trust bundle once no proxy holds a certificate from it').argument('<root>', 'fingerprint (or its first 16 digits)')).action(async (root: string, flags: CaFlags) => {
    const r = await controlClient(flags).request<{ removed?: string }>('DELETE', `/api/v1/ca/roots/${encodeURIComponent(root)}`);
    if (r.status !== 200) throw apiError(r.status, r.body, `removing root ${root}`);
    say(`root ${short(r.body.removed ?? root)} removed from the trust bundle`);
  });
  common(
    ca
      .command('admin-cert')
      .description('an admin client certificate (SPIFFE ID .../ns/mycel-system/sa/admin): the key is made here; the CLI uses DIR/admin.crt and admin.key instead of the admin token')
      .option('--out <dir>', 'where to write admin.crt and admin.key (0600)', '.mycel')
      .option('--ttl <duration>', 'lifetime, from 1m to 30d', '24h'),
  ).action(async (flags: CaFlags & { out: string; ttl: string }) => {
    const ttlMs = parseDuration(flags.ttl);
    if (ttlMs === undefined || ttlMs < 60_000 || ttlMs > 30 * 86_400_000) throw new CliError(`invalid --ttl "${flags.ttl}": expected a duration from 1m to 30d`, EXIT_USAGE);
    const { newKeyAndCsr } = await import('../../security/workload-key.js');
    const fresh = await newKeyAndCsr();
    const r = await controlClient(flags).request<{ certChain?: string; spiffeId?: string; notAfter?: number }>('POST', '/api/v1/ca/admin-certificates', { csr: fresh.csrPem, ttlSeconds: Math.round(ttlMs / 1000) });
    if (r.status !== 200 || typeof r.body.certChain !== 'string') throw apiError(r.status, r.body, 'issuing an admin certificate');
    const { makeDirectory, replaceFile } = await import('../../security/secret-files.js');
    await makeDirectory(flags.out, 0o700);
    await replaceFile(`${flags.out}/admin.key`, fresh.keyPem, 0o600);
    await replaceFile(`${flags.out}/admin.crt`, r.body.certChain, 0o644);
    say(`admin certificate for ${r.body.spiffeId} written to ${flags.out}/admin.crt (key: admin.key, mode 0600), valid until ${new Date(r.body.notAfter ?? 0).toISOString()}\nuse it: the CLI reads it from the state directory, or set MYCEL_CERT and MYCEL_KEY; curl --cert ${flags.out}/admin.crt --key ${flags.out}/admin.key --cacert ${flags.out}/ca.pem`);
  });
  common(ca.command('rotate').description('all three steps: add a root, activate it once every proxy trusts it, remove the old one once no proxy depends on it').option('--timeout <duration>', 'how long to wait for proxies at each step', '5m')).action(async (flags: CaFlags) => {
    const timeoutMs = parseDuration(flags.timeout ?? '5m');
    if (timeoutMs === undefined || timeoutMs <= 0) throw new CliError(`invalid --timeout "${flags.timeout}": expected a duration such as 5m`, EXIT_USAGE);
    const client = controlClient(flags);
    const before = await status(client);
    // Every root there now leaves the bundle at the end (an earlier rotation may have left one behind).
    const old = before.roots.map((r) => r.fingerprint);
    say(`[1/3] adding a new root`);
    const fp = await addRoot(client);
    say(`  root ${short(fp)} is in the trust bundle`);
    say(`[2/3] activating it once every proxy trusts it`);
    await stepUntilDone(client, 'POST', '/api/v1/ca/activate', { root: fp }, `activating root ${short(fp)}`, Date.now() + timeoutMs);
    say(`  new certificates come from root ${short(fp)}; proxies renew onto it`);
    say(`[3/3] removing the old root${old.length === 1 ? '' : 's'} once no proxy depends on ${old.length === 1 ? 'it' : 'them'}`);
    for (const o of old) {
      await stepUntilDone(client, 'DELETE', `/api/v1/ca/roots/${o}`, undefined, `removing root ${short(o)}`, Date.now() + timeoutMs);
      say(`  root ${short(o)} removed`);
    }
    say(`rotated: root ${short(fp)} is the only root`);
  });
}
