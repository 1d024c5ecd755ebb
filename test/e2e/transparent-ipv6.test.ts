// Transparent mode over IPv6, in network namespaces with IPv6 addresses (fd00:6d79::N) beside the bed's IPv4 ones:
// `mycel iptables` installs and removes the rules of both families, refuses when IPv6 is on but cannot be
// intercepted, a plain-text IPv6 client never reaches an app under STRICT mTLS, and an app's outbound IPv6
// connections go through the sidecar (to a mesh service over IPv6 mTLS, or outside the mesh by the outbound policy).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { requirePackage, run } from '../helpers/http.js';
import { counterSum } from '../helpers/metrics-text.js';
import { MYCEL_BIN, spawnMycel, type MycelProcess } from '../helpers/mycel-process.js';
import { createHostBed, requireNetns, requireTransparent, type Host, type HostBed } from '../hosts/netns-bed.js';

const V6_PREFIX = 'fd00:6d79::';

/** Gives the host the IPv6 address fd00:6d79::N (no duplicate address detection, so it is usable at once). */
async function addIpv6(h: Host, n: number): Promise<string> {
  const address = `${V6_PREFIX}${n}`;
  const r = await run('ip', ['-n', h.ns, '-6', 'addr', 'add', `${address}/64`, 'dev', h.dev, 'nodad']);
  assert.equal(r.code, 0, r.stderr);
  return address;
}

async function ipv6Prerequisites(t: TestContext, transparent: boolean): Promise<boolean> {
  if (!(await (transparent ? requireTransparent(t) : requireNetns(t)))) return false;
  return requirePackage(t, 'ip6tables', 'iptables');
}

const mycelIn = (h: Host, ...args: string[]) => h.exec(process.execPath, [MYCEL_BIN, ...args]);
const saved = async (h: Host, tool: 'iptables-save' | 'ip6tables-save') => (await h.exec(tool, ['-t', 'nat'])).stdout;

/** A directory to put first on PATH that has iptables but no ip6tables: a machine without IPv6 interception. */
async function pathWithoutIp6tables(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-noip6-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const tool of ['iptables-save', 'iptables-restore']) {
    const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    assert.notEqual(where, '', `${tool} not found`);
    // Named as the tool: xtables-multi picks what to do from argv[0].
    await symlink(where, join(dir, tool));
  }
  return dir;
}

test('mycel iptables installs the rules of both families, replaces stale ones, and remove takes both out', async (t) => {
  if (!(await ipv6Prerequisites(t, false))) return;
  const bed = await createHostBed(t, [{ name: 'app' }]);
  const h = bed.host('app');
  await addIpv6(h, 1);
  // Leftovers of an older sidecar in the IPv6 table, and someone else's rule that must survive.
  assert.equal((await h.exec('ip6tables', ['-t', 'nat', '-N', 'MYCEL_OLD'])).code, 0);
  assert.equal((await h.exec('ip6tables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '1', '-j', 'MYCEL_OLD'])).code, 0);
  assert.equal((await h.exec('ip6tables', ['-t', 'nat', '-A', 'POSTROUTING', '-s', 'fd00:9::/64', '-j', 'MASQUERADE'])).code, 0);

  for (let i = 0; i < 2; i++) {
    const r = await mycelIn(h, 'iptables', 'install', '--outbound-port', '15001', '--inbound-port', '15006', '--exclude-inbound-ports', '22');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /installed \(outbound -> 15001, inbound -> 15006, sidecar group 1337\) for IPv4 and IPv6/);
  }
  const v4 = await saved(h, 'iptables-save');
  const v6 = await saved(h, 'ip6tables-save');
  for (const rules of [v4, v6]) {
    assert.equal(rules.match(/-A OUTPUT -p tcp -j MYCEL_OUTPUT/g)?.length, 1, rules);
    assert.equal(rules.match(/-A PREROUTING -p tcp -j MYCEL_INBOUND/g)?.length, 1, rules);
    assert.match(rules, /-A MYCEL_OUTPUT -m owner --gid-owner 1337 -j RETURN/);
    assert.match(rules, /-A MYCEL_INBOUND -p tcp -m tcp --dport 22 -j RETURN/);
    assert.match(rules, /-A MYCEL_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/);
  }
  assert.match(v4, /-A MYCEL_OUTPUT -d 127\.0\.0\.0\/8 -j RETURN/);
  assert.match(v6, /-A MYCEL_OUTPUT -d ::1\/128 -j RETURN/);
  assert.doesNotMatch(v6, /MYCEL_OLD/);

  const dry = await mycelIn(h, 'iptables', 'install', '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^# iptables-restore --noflush \(IPv4\)\n\*nat\n[^#]*-d 127\.0\.0\.0\/8[^#]*\n# ip6tables-restore --noflush \(IPv6\)\n\*nat\n[^#]*-d ::1\/128/);

  const removed = await mycelIn(h, 'iptables', 'remove');
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /removed/);
  assert.doesNotMatch(await saved(h, 'iptables-save'), /MYCEL_/);
  const after = await saved(h, 'ip6tables-save');
  assert.doesNotMatch(after, /MYCEL_/);
  assert.match(after, /MASQUERADE/);
  assert.match((await mycelIn(h, 'iptables', 'remove')).stdout, /no MYCEL_\* rules were installed/);
});

test('without ip6tables, install refuses while IPv6 is on, unless --ipv4-only or IPv6 is off', async (t) => {
  if (!(await requireTransparent(t))) return;
  const bed = await createHostBed(t, [{ name: 'app' }, { name: 'nov6' }]);
  const [h, off] = [bed.host('app'), bed.host('nov6')];
  await addIpv6(h, 1);
  const path = await pathWithoutIp6tables(t);
  const install = (host: Host, ...args: string[]) => host.exec('env', [`PATH=${path}`, process.execPath, MYCEL_BIN, 'iptables', 'install', ...args]);

  const refused = await install(h);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stderr, /IPv6 is on in this network namespace but its connections cannot be redirected: ip6tables-save is not installed/);
  assert.match(refused.stderr, /fix: install ip6tables .* --ipv4-only/);
  assert.doesNotMatch(await saved(h, 'iptables-save'), /MYCEL_/, 'nothing is half installed');

  await t.test('the sidecar refuses to start in transparent mode, naming the fix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mycel-ipv6-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const config = join(dir, 'mesh.yaml');
    await writeFile(config, `apiVersion: mycel.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: mesh }\nspec: { trustDomain: mycel.local }\n`);
    await writeDevCertificates(dir, { services: ['app'] });
    await assert.rejects(
      spawnMycel('sidecar app', ['proxy', '--service', 'app', '--app-port', '8080', '--config', config, '--inbound', '0.0.0.0:15006', '--outbound', '127.0.0.1:15001', '--admin', '127.0.0.1:15000',
        '--cert', join(dir, 'app.crt'), '--key', join(dir, 'app.key'), '--ca', join(dir, 'ca.crt'), '--transparent'], /ready: outbound/, { prefix: [...h.prefix, 'env', `PATH=${path}`], timeoutMs: 30_000 }),
      /cannot start transparent mode: IPv6 is on in this network namespace[^]*--ipv4-only/,
    );
    assert.doesNotMatch(await saved(h, 'iptables-save'), /MYCEL_/);
  });

  const v4only = await install(h, '--ipv4-only');
  assert.equal(v4only.code, 0, v4only.stderr);
  assert.match(v4only.stdout, /for IPv4 only: the operator passed --ipv4-only/);
  assert.match(await saved(h, 'iptables-save'), /-A OUTPUT -p tcp -j MYCEL_OUTPUT/);

  // A namespace with IPv6 off has nothing to intercept over IPv6.
  const sysctl = await off.exec('sysctl', ['-w', 'net.ipv6.conf.all.disable_ipv6=1']);
  assert.equal(sysctl.code, 0, sysctl.stderr);
  const noV6 = await install(off);
  assert.equal(noV6.code, 0, noV6.stderr);
  assert.match(noV6.stdout, /for IPv4 only: IPv6 is off in this network namespace/);
});

// Runs inside the namespace: a dual-stack server that the rules redirect port 80 to; it prints what
// originalDestination says for redirected IPv6 and IPv4 connections and for direct ones on both loopbacks.
const PROBE = `
import net from 'node:net';
import { originalDestination } from ${JSON.stringify(new URL('../../src/proxy/transparent/original-dst.js', import.meta.url).href)};
const [port, v6, v4] = [Number(process.argv[1]), process.argv[2], process.argv[3]];
const seen = [];
const server = net.createServer((s) => { seen.push(originalDestination(s)); s.end(); });
server.listen(port, '::', async () => {
  const one = (host, p) => new Promise((res) => net.connect(p, host).on('close', res).on('error', res).resume());
  for (const [host, p] of [[v6, 80], [v4, 80], ['::1', port], ['127.0.0.1', port]]) await one(host, p);
  console.log(JSON.stringify(seen));
  server.close();
});
`;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

test('the addon reads IPv6 original destinations, and IPv4 ones on a dual-stack socket', async (t) => {
  if (!(await ipv6Prerequisites(t, true))) return;
  const bed = await createHostBed(t, [{ name: 'app' }, { name: 'peer' }]);
  const [h, peer] = [bed.host('app'), bed.host('peer')];
  await addIpv6(h, 1);
  const peer6 = await addIpv6(peer, 2);
  const port = await freePort();
  // Outbound only, and the test process's group is not the proxy group: the probe's connections are redirected.
  const install = await mycelIn(h, 'iptables', 'install', '--no-inbound', '--outbound-port', String(port));
  assert.equal(install.code, 0, install.stderr);
  const r = await h.exec(process.execPath, ['--input-type=module', '-e', PROBE, String(port), peer6, peer.address]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [{ address: peer6, port: 80 }, { address: peer.address, port: 80 }, null, null]);
});

// The app: answers with who called it (the peer identity its sidecar adds), and logs each connection and its bytes.
const APP = `
const http = require('node:http');
const ports = (process.env.PORTS ?? '8080').split(',').map(Number);
let listening = 0;
for (const port of ports) {
  const server = http.createServer((req, res) => res.end(JSON.stringify({ service: process.env.NAME, port, peerIdentity: req.headers['x-mycel-peer-identity'] ?? null })));
  server.on('connection', (s) => {
    const remote = s.remoteAddress;
    let bytes = 0;
    s.on('data', (d) => bytes += d.length);
    s.on('close', () => console.log(JSON.stringify({ port, remote, bytes })));
  });
  server.listen(port, '::', () => { if (++listening === ports.length) console.log('app ready'); });
}
`;

/** Starts the app in the host; returns what it logged so far (one JSON line per closed connection). */
async function startApp(h: Host, file: string, env: Record<string, string>): Promise<() => Array<{ port: number; remote: string; bytes: number }>> {
  const child = h.spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('app ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`app in ${h.name} exited (${code})`)));
  });
  return () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { port: number; remote: string; bytes: number });
}

function meshYaml(policy: 'ALLOW_ANY' | 'REGISTRY_ONLY', services: Array<{ name: string; address: string }>): string {
  return `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local, outboundTrafficPolicy: { mode: ${policy} }, telemetry: { accessLog: { enabled: true, format: json } } }
${services.map((s) => `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ${s.name} }
spec:
  ports: [ { port: 8080, appProtocol: http } ]
  endpoints: [ { address: "${s.address}", port: 15006 } ]
`).join('')}`;
}

async function startSidecar(bed: HostBed, h: Host, dir: string, config: string, extra: string[] = []): Promise<MycelProcess> {
  const { p } = await spawnMycel(`sidecar ${h.name}`, ['proxy', '--service', h.name, '--app-port', '8080', '--config', config, '--inbound', '0.0.0.0:15006', '--outbound', '127.0.0.1:15001',
    '--admin', '127.0.0.1:15000', '--cert', join(dir, `${h.name}.crt`), '--key', join(dir, `${h.name}.key`), '--ca', join(dir, 'ca.crt'), '--transparent', ...extra], /ready: outbound/, { prefix: h.prefix, timeoutMs: 30_000 });
  if (p.proc.pid !== undefined) bed.track(p.proc.pid);
  const installed = await p.waitForLog((r) => r.msg === 'transparent interception installed', 30_000);
  assert.deepEqual(installed.families, ['ipv4', 'ipv6']);
  return p;
}

// Runs in the client's namespace: a plain-text HTTP request over a raw TCP connection; prints what came back.
const PLAIN_CLIENT = `
const net = require('node:net');
const [host, port] = [process.argv[1], Number(process.argv[2])];
let response = '';
const s = net.connect({ host, port }, () => s.write('GET / HTTP/1.1\\r\\nhost: app\\r\\nconnection: close\\r\\n\\r\\n'));
s.setTimeout(15000, () => s.destroy(new Error('timeout')));
s.on('data', (d) => response += d);
s.on('error', (e) => { console.log(JSON.stringify({ response, error: e.code ?? e.message })); process.exit(0); });
s.on('close', () => { console.log(JSON.stringify({ response, error: null })); });
`;

async function workDir(t: TestContext, services: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-ipv6-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeDevCertificates(dir, { services });
  await writeFile(join(dir, 'app.cjs'), APP);
  return dir;
}

test('STRICT mTLS: a plain-text client over IPv6 is redirected to the inbound port and the app sees no byte', { timeout: 120_000 }, async (t) => {
  if (!(await ipv6Prerequisites(t, true)) || !(await requirePackage(t, 'curl', 'curl'))) return;
  const dir = await workDir(t, ['app']);
  const bed = await createHostBed(t, [{ name: 'app' }, { name: 'client' }]);
  const [h, client] = [bed.host('app'), bed.host('client')];
  const app6 = await addIpv6(h, 1);
  const client6 = await addIpv6(client, 2);
  const config = join(dir, 'mesh.yaml');
  await writeFile(config, meshYaml('ALLOW_ANY', [{ name: 'app', address: app6 }]));
  const appSaw = await startApp(h, join(dir, 'app.cjs'), { NAME: 'app', PORTS: '8080,9000' });
  // 9000 is excluded: it shows that a plain-text IPv6 client reaches the app where the rules let it.
  await startSidecar(bed, h, dir, config, ['--exclude-inbound-ports', '9000']);
  const plain = async (port: number) => {
    const r = await client.exec(process.execPath, ['-e', PLAIN_CLIENT, app6, String(port)]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { response: string; error: string | null };
  };

  const excluded = await plain(9000);
  assert.match(excluded.response, /^HTTP\/1\.1 200/);
  assert.match(excluded.response, /"port":9000/);
  const meshed = await plain(8080);
  assert.equal(meshed.response, '', 'no answer from the app: the connection went to the inbound mTLS port, which refuses plain text');

  const metrics = await h.exec('curl', ['-sS', '-m', '10', 'http://127.0.0.1:15000/metrics']);
  assert.equal(counterSum(metrics.stdout, 'mycel_inbound_handshake_errors_total', { reason: 'plaintext' }), 1, metrics.stdout);
  // The app's connection log is written on close; the one on 9000 is there, so a connection on 8080 would be too.
  const deadline = Date.now() + 10_000;
  while (appSaw().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(appSaw().map((c) => ({ port: c.port, remote: c.remote })), [{ port: 9000, remote: client6 }], 'the app saw the excluded port only, nothing on 8080');
});

test('an app\'s outbound IPv6 connections go through the sidecar: to a mesh service over IPv6 mTLS, else by the outbound policy', { timeout: 120_000 }, async (t) => {
  if (!(await ipv6Prerequisites(t, true)) || !(await requirePackage(t, 'curl', 'curl'))) return;
  const dir = await workDir(t, ['web', 'api']);
  const bed = await createHostBed(t, [{ name: 'web' }, { name: 'api' }]);
  const [web, api] = [bed.host('web'), bed.host('api')];
  const web6 = await addIpv6(web, 1);
  const api6 = await addIpv6(api, 2);
  const services = [{ name: 'web', address: web6 }, { name: 'api', address: api6 }];
  const config = join(dir, 'mesh.yaml');
  await writeFile(config, meshYaml('ALLOW_ANY', services));
  const webConfig = join(dir, 'web.yaml');
  await writeFile(webConfig, meshYaml('ALLOW_ANY', services));
  // api's host runs a mesh app on 8080 and, on 9000 (excluded from its sidecar), a server outside the mesh.
  await startApp(api, join(dir, 'app.cjs'), { NAME: 'api', PORTS: '8080,9000' });
  await startSidecar(bed, api, dir, config, ['--exclude-inbound-ports', '9000']);
  const webSidecar = await startSidecar(bed, web, dir, webConfig);
  const curl6 = (url: string, ...args: string[]) => web.exec('curl', ['-sS', '-g', '-6', '-m', '30', '--noproxy', '*', ...args, url]);

  // An IPv6 address of an api endpoint: meshed (mTLS to api's sidecar over IPv6), api sees web's identity.
  const meshed = await curl6(`http://[${api6}]:8080/`);
  assert.equal(meshed.code, 0, meshed.stderr);
  assert.deepEqual(JSON.parse(meshed.stdout), { service: 'api', port: 8080, peerIdentity: 'spiffe://mycel.local/ns/default/svc/web' });

  // Outside the mesh (ALLOW_ANY): passed through by the sidecar, which logs and counts the tunnel.
  const outside = await curl6(`http://[${api6}]:9000/`);
  assert.equal(outside.code, 0, outside.stderr);
  assert.deepEqual(JSON.parse(outside.stdout), { service: 'api', port: 9000, peerIdentity: null });
  const metrics = await web.exec('curl', ['-sS', '-m', '10', 'http://127.0.0.1:15000/metrics']);
  assert.equal(counterSum(metrics.stdout, 'mycel_requests_total', { direction: 'outbound', destination_service: 'api', status_code: '200' }), 1, metrics.stdout);
  assert.equal(counterSum(metrics.stdout, 'mycel_tcp_connections_opened_total', { direction: 'outbound', source_service: 'web' }), 1, metrics.stdout);
  const deadline = Date.now() + 10_000;
  const tunnelLine = () => webSidecar.stdout().split('\n').find((l) => l.includes('"kind":"tcp"'));
  while (tunnelLine() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const line = JSON.parse(tunnelLine() ?? '{}') as Record<string, unknown>;
  assert.equal(line.direction, 'outbound');
  assert.equal(line.endpoint, `[${api6}]:9000`, 'the original IPv6 destination, as the addon read it');

  await t.test('REGISTRY_ONLY refuses an IPv6 destination outside the mesh', async () => {
    await writeFile(webConfig, meshYaml('REGISTRY_ONLY', services));
    await webSidecar.waitForLog((r) => r.msg === 'config applied' && r.version === 2, 30_000);
    const refused = await curl6(`http://[${api6}]:9000/`, '-D', '-');
    assert.match(refused.stdout, /^HTTP\/1\.1 502/);
    assert.match(refused.stdout, /x-mycel-error: unknown-service/i);
    assert.match(refused.stdout, new RegExp(`\\[${api6}\\]:9000 is not a mesh service`));
    const still = await curl6(`http://[${api6}]:8080/still`);
    assert.equal(JSON.parse(still.stdout).service, 'api', 'the mesh service still works');
  });
});
