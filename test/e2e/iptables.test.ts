// `mycel iptables install|remove` in a network namespace of its own: idempotent install that replaces stale MYCEL_*
// chains, removal, and the SO_ORIGINAL_DST addon reading a redirected connection's destination.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { MYCEL_BIN, spawnMycel } from '../helpers/mycel-process.js';
import { MESH_AND_WEB } from '../helpers/sidecars.js';
import { createHostBed, requireNetns, requireTransparent } from '../hosts/netns-bed.js';

test('mycel iptables install replaces stale rules, installs once however often it runs, and remove takes all out', async (t) => {
  if (!(await requireNetns(t))) return;
  const bed = await createHostBed(t, [{ name: 'app' }]);
  const h = bed.host('app');
  const mycel = (...args: string[]) => h.exec(process.execPath, [MYCEL_BIN, 'iptables', ...args]);
  const nat = async () => (await h.exec('iptables-save', ['-t', 'nat'])).stdout;

  // Leftovers of an older sidecar: a chain of ours with a jump into it.
  assert.equal((await h.exec('iptables', ['-t', 'nat', '-N', 'MYCEL_OLD'])).code, 0);
  assert.equal((await h.exec('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '1', '-j', 'MYCEL_OLD'])).code, 0);
  // Someone else's rule, which must survive everything below.
  assert.equal((await h.exec('iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-s', '10.9.9.0/24', '-j', 'MASQUERADE'])).code, 0);

  for (let i = 0; i < 2; i++) {
    const r = await mycel('install', '--outbound-port', '15001', '--inbound-port', '15006', '--exclude-outbound-ports', '5432', '--exclude-inbound-ports', '22');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /installed \(outbound -> 15001, inbound -> 15006, sidecar group 1337\)/);
  }
  const rules = await nat();
  assert.equal(rules.match(/-A OUTPUT -p tcp -j MYCEL_OUTPUT/g)?.length, 1, rules);
  assert.equal(rules.match(/-A PREROUTING -p tcp -j MYCEL_INBOUND/g)?.length, 1, rules);
  assert.doesNotMatch(rules, /MYCEL_OLD/);
  assert.match(rules, /-A MYCEL_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN/);
  assert.match(rules, /-A MYCEL_INBOUND -p tcp -m tcp --dport 22 -j RETURN/);
  assert.match(rules, /MASQUERADE/);

  const dry = await mycel('install', '--no-inbound', '--dry-run');
  assert.equal(dry.code, 0);
  assert.match(dry.stdout, /^# iptables-restore --noflush \(IPv4\)\n\*nat\n/);
  assert.doesNotMatch(dry.stdout, /PREROUTING/);

  const bad = await mycel('install', '--exclude-outbound-ports', '22,x');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /invalid --exclude-outbound-ports: "x" is not a port/);

  const removed = await mycel('remove');
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /removed/);
  const after = await nat();
  assert.doesNotMatch(after, /MYCEL_/);
  assert.match(after, /MASQUERADE/);
  assert.match((await mycel('remove')).stdout, /no MYCEL_\* rules were installed/);
});

// Runs inside the namespace: a server on 127.0.0.1 that the rules redirect port 80 to; it prints what
// originalDestination says for a redirected connection and for a direct one.
const PROBE = `
import net from 'node:net';
import { originalDestination } from ${JSON.stringify(new URL('../../src/proxy/transparent/original-dst.js', import.meta.url).href)};
const [port, target] = [Number(process.argv[1]), process.argv[2]];
const seen = [];
const server = net.createServer((s) => { seen.push(originalDestination(s)); s.end(); });
server.listen(port, '127.0.0.1', () => {
  const one = (host, p) => new Promise((res) => net.connect(p, host).on('close', res).on('error', res).resume());
  one(target, 80).then(() => one('127.0.0.1', port)).then(() => { console.log(JSON.stringify(seen)); server.close(); });
});
`;

test('the addon reads the original destination of a redirected connection, and null for a direct one', async (t) => {
  if (!(await requireTransparent(t))) return;
  const bed = await createHostBed(t, [{ name: 'app' }, { name: 'peer' }]);
  const h = bed.host('app');
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  // Outbound only, and the test process's group is not the proxy group: the probe's connection is redirected.
  const install = await h.exec(process.execPath, [MYCEL_BIN, 'iptables', 'install', '--no-inbound', '--outbound-port', String(port)]);
  assert.equal(install.code, 0, install.stderr);
  const r = await h.exec(process.execPath, ['--input-type=module', '-e', PROBE, String(port), bed.host('peer').address]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [{ address: bed.host('peer').address, port: 80 }, null]);
});

test('init-container style: a sidecar with --skip-iptables runs in the proxy group and leaves the rules to their owner', async (t) => {
  if (!(await requireTransparent(t))) return;
  const dir = await mkdtemp(join(tmpdir(), 'mycel-iptables-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeDevCertificates(dir, { services: ['web'] });
  const config = join(dir, 'mesh.yaml');
  await writeFile(config, MESH_AND_WEB);
  const bed = await createHostBed(t, [{ name: 'app' }]);
  const h = bed.host('app');
  const install = await h.exec(process.execPath, [MYCEL_BIN, 'iptables', 'install', '--proxy-gid', '4242', '--outbound-port', '15001', '--inbound-port', '15006']);
  assert.equal(install.code, 0, install.stderr);
  const { p } = await spawnMycel('sidecar web', ['proxy', '--service', 'web', '--app-port', '3000', '--config', config, '--transparent', '--skip-iptables', '--proxy-gid', '4242',
    '--cert', join(dir, 'web.crt'), '--key', join(dir, 'web.key'), '--ca', join(dir, 'ca.crt')], /ready: outbound/, { prefix: h.prefix });
  if (p.proc.pid !== undefined) bed.track(p.proc.pid);
  const status = await readFile(`/proc/${p.proc.pid}/status`, 'utf8');
  assert.match(status, /^Gid:\s+4242\s+4242\s+4242\s+4242$/m, 'real, effective, saved and filesystem group');
  const exit = await p.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `the sidecar drains and exits 0 on SIGTERM; its last log lines:\n${p.logs.slice(-8).join('\n')}`);
  const rules = (await h.exec('iptables-save', ['-t', 'nat'])).stdout;
  assert.match(rules, /--gid-owner 4242 -j RETURN/, 'the rules stay: the init step installed them');
});
