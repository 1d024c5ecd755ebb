// Transparent mode across hosts: three network namespaces (web, api, reviews), each app with a `mycel proxy
// --transparent` sidecar. Unmodified clients (curl, Python's urllib) call http://api:8080/ by name; iptables sends
// the connection through the sidecars over mTLS, api calls reviews the same way, and each callee sees its caller's
// SPIFFE identity. Also: pass-through to a destination outside the mesh, REGISTRY_ONLY, and rule removal on exit.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { requirePackage } from '../helpers/http.js';
import { counterSum } from '../helpers/metrics-text.js';
import { MYCEL_BIN, spawnMycel, type MycelProcess } from '../helpers/mycel-process.js';
import { createHostBed, requireTransparent, type Host, type HostBed } from '../hosts/netns-bed.js';

// An app that knows nothing of the mesh: it answers with who called it, and calls NEXT (if set) by its plain URL.
const APP = `
const http = require('node:http');
const { NAME, NEXT } = process.env;
http.createServer((req, res) => {
  const answer = (next) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ service: NAME, path: req.url, peerIdentity: req.headers['x-mycel-peer-identity'] ?? null, next }));
  };
  if (!NEXT) return answer(null);
  http.get(NEXT, (r) => { let b = ''; r.on('data', (d) => b += d); r.on('end', () => answer({ status: r.statusCode, body: JSON.parse(b) })); })
    .on('error', (e) => answer({ error: e.message }));
}).listen(8080, '0.0.0.0', () => console.log('app ready'));
`;
const PLAIN = `require('node:http').createServer((req, res) => res.end('plain server outside the mesh')).listen(9000, '0.0.0.0', () => console.log('plain ready'))`;

function meshYaml(bed: HostBed, policy: 'ALLOW_ANY' | 'REGISTRY_ONLY'): string {
  const svc = (name: string, host: Host) => `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ${name} }
spec:
  ports: [ { port: 8080, appProtocol: http } ]
  endpoints: [ { address: ${host.address}, port: 15006 } ]
`;
  return `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local, outboundTrafficPolicy: { mode: ${policy} } }
${svc('web', bed.host('web'))}${svc('api', bed.host('api'))}${svc('reviews', bed.host('reviews'))}`;
}

async function startApp(h: Host, file: string, env: Record<string, string>): Promise<void> {
  const child = h.spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`app in ${h.name} exited (${code})`)));
  });
}

/** `source`: ['--config', FILE] or ['--control', URL, '--token', FILE, ...]. */
async function startSidecar(bed: HostBed, h: Host, dir: string, source: string[], extra: string[] = []): Promise<MycelProcess> {
  const args = ['proxy', '--service', h.name, '--app-port', '8080', ...source, '--inbound', '0.0.0.0:15006', '--outbound', '127.0.0.1:15001', '--admin', '127.0.0.1:15000',
    '--cert', join(dir, `${h.name}.crt`), '--key', join(dir, `${h.name}.key`), '--ca', join(dir, 'ca.crt'), '--transparent', ...extra];
  const { p } = await spawnMycel(`sidecar ${h.name}`, args, /ready: outbound/, { prefix: h.prefix, timeoutMs: 30_000 });
  if (p.proc.pid !== undefined) bed.track(p.proc.pid);
  // Ready is printed before the rules go in; the log line says they are in.
  await p.waitForLog((r) => r.msg === 'transparent interception installed', 30_000);
  return p;
}

/** web called api by plain URL, api called reviews the same way: each callee saw its caller's verified identity. */
function expectChain(body: Record<string, unknown>, path: string): void {
  assert.equal(body.service, 'api');
  assert.equal(body.path, path);
  assert.equal(body.peerIdentity, 'spiffe://mycel.local/ns/default/svc/web', 'api sees the caller web over mTLS');
  const next = body.next as { status: number; body: Record<string, unknown> };
  assert.equal(next.status, 200, JSON.stringify(next));
  assert.equal(next.body.service, 'reviews');
  assert.equal(next.body.peerIdentity, 'spiffe://mycel.local/ns/default/svc/api', 'reviews sees api, whose app also called by plain URL');
}

/** From the web host, curl and Python's urllib call http://api:8080/ by name; web's sidecar counts both. */
async function curlAndPythonCallApi(web: Host): Promise<void> {
  const curl = await web.exec('curl', ['-sS', '-m', '30', '--noproxy', '*', 'http://api:8080/by-curl']);
  assert.equal(curl.code, 0, curl.stderr);
  expectChain(json(curl.stdout), '/by-curl');
  const py = await web.exec('python3', ['-c', "import urllib.request; print(urllib.request.urlopen('http://api:8080/by-python', timeout=30).read().decode())"]);
  assert.equal(py.code, 0, py.stderr);
  expectChain(json(py.stdout), '/by-python');
  const metrics = await web.exec('curl', ['-sS', '-m', '10', 'http://127.0.0.1:15000/metrics']);
  assert.equal(counterSum(metrics.stdout, 'mycel_requests_total', { direction: 'outbound', source_service: 'web', destination_service: 'api', status_code: '200' }), 2);
}

function json(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON: ${text.slice(0, 500)}`);
  }
}

/** What both scenarios need: root, the tools, the addon. */
async function prerequisites(t: TestContext): Promise<boolean> {
  if (!(await requireTransparent(t))) return false;
  return (await requirePackage(t, 'curl', 'curl')) && (await requirePackage(t, 'python3', 'python3'));
}

/** A temp dir with certificates for the three services and the app script; removed after the test. */
async function workDir(t: TestContext): Promise<{ dir: string; appFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-transparent-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeDevCertificates(dir, { services: ['web', 'api', 'reviews'] });
  const appFile = join(dir, 'app.cjs');
  await writeFile(appFile, APP);
  return { dir, appFile };
}

test('unmodified clients in three network namespaces are meshed by transparent interception', { timeout: 120_000 }, async (t) => {
  if (!(await prerequisites(t))) return;
  const { dir, appFile } = await workDir(t);
  const bed = await createHostBed(t, [{ name: 'web' }, { name: 'api' }, { name: 'reviews' }]);
  const [web, api, reviews] = [bed.host('web'), bed.host('api'), bed.host('reviews')];
  const config = join(dir, 'mesh.yaml');
  await writeFile(config, meshYaml(bed, 'ALLOW_ANY'));
  // web reloads its own copy when the test switches it to REGISTRY_ONLY.
  const webConfig = join(dir, 'web.yaml');
  await writeFile(webConfig, meshYaml(bed, 'ALLOW_ANY'));
  const plainFile = join(dir, 'plain.cjs');
  await writeFile(plainFile, PLAIN);

  await startApp(web, appFile, { NAME: 'web' });
  await startApp(api, appFile, { NAME: 'api', NEXT: 'http://reviews:8080/from-api' });
  await startApp(reviews, appFile, { NAME: 'reviews' });
  await startApp(reviews, plainFile, {});
  const webSidecar = await startSidecar(bed, web, dir, ['--config', webConfig]);
  await startSidecar(bed, api, dir, ['--config', config]);
  await startSidecar(bed, reviews, dir, ['--config', config], ['--exclude-inbound-ports', '9000']);

  const rules = await web.exec('iptables-save', ['-t', 'nat']);
  assert.match(rules.stdout, /-A OUTPUT -p tcp -j MYCEL_OUTPUT/);
  assert.match(rules.stdout, /-A MYCEL_OUTPUT -m owner --gid-owner 1337 -j RETURN/);

  await curlAndPythonCallApi(web);
  // api's sidecar counted its calls to reviews too.
  const apiMetrics = await api.exec('curl', ['-sS', '-m', '10', 'http://127.0.0.1:15000/metrics']);
  assert.equal(counterSum(apiMetrics.stdout, 'mycel_requests_total', { direction: 'outbound', source_service: 'api', destination_service: 'reviews' }), 2);

  // A port of no mesh service passes through (ALLOW_ANY), plain, to where the app meant to go.
  const plain = await web.exec('curl', ['-sS', '-m', '30', '--noproxy', '*', 'http://reviews:9000/']);
  assert.equal(plain.stdout, 'plain server outside the mesh', plain.stderr);

  await t.test('REGISTRY_ONLY refuses destinations outside the mesh', async () => {
    await writeFile(webConfig, meshYaml(bed, 'REGISTRY_ONLY'));
    await webSidecar.waitForLog((r) => r.msg === 'config applied' && r.version === 2, 30_000);
    const refused = await web.exec('curl', ['-sS', '-m', '30', '--noproxy', '*', '-D', '-', 'http://reviews:9000/']);
    assert.match(refused.stdout, /^HTTP\/1\.1 502/);
    assert.match(refused.stdout, /x-mycel-error: unknown-service/i);
    // Mesh services still work.
    const ok = await web.exec('curl', ['-sS', '-m', '30', '--noproxy', '*', 'http://api:8080/still']);
    expectChain(json(ok.stdout), '/still');
  });

  await t.test('the sidecar removes its rules when it stops', async () => {
    const exit = await webSidecar.stop('SIGTERM');
    assert.equal(exit.code, 0);
    const after = await web.exec('iptables-save', ['-t', 'nat']);
    assert.doesNotMatch(after.stdout, /MYCEL_/);
  });
});

test('with a control plane on a fourth host, a sidecar learns a service it has not used from the request\'s Host', { timeout: 120_000 }, async (t) => {
  if (!(await prerequisites(t))) return;
  const { dir, appFile } = await workDir(t);
  const bed = await createHostBed(t, [{ name: 'web' }, { name: 'api' }, { name: 'reviews' }, { name: 'control' }]);
  const [web, api, reviews, cpHost] = [bed.host('web'), bed.host('api'), bed.host('reviews'), bed.host('control')];
  const stateDir = join(dir, 'cp');
  const { p: cp } = await spawnMycel('control', ['control', '--store', `file:${stateDir}`, '--state-dir', stateDir, '--listen', '0.0.0.0:7400', '--lease', '10s'], /mycel control ready/, { prefix: cpHost.prefix, timeoutMs: 30_000 });
  if (cp.proc.pid !== undefined) bed.track(cp.proc.pid);
  const adminToken = join(stateDir, 'admin-token');
  const cli = (...args: string[]) => cpHost.exec(process.execPath, [MYCEL_BIN, ...args, '--control', 'https://127.0.0.1:7400', '--token', adminToken, '--ca', join(stateDir, 'ca.pem')]);
  const resources = join(dir, 'mesh.yaml');
  const svc = (name: string) => `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ${name} }
spec: { ports: [ { port: 8080, appProtocol: http } ] }
`;
  await writeFile(resources, `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local }
${svc('web')}${svc('api')}${svc('reviews')}`);
  const applied = await cli('apply', '-f', resources);
  assert.equal(applied.code, 0, applied.stderr);

  await startApp(web, appFile, { NAME: 'web' });
  await startApp(api, appFile, { NAME: 'api', NEXT: 'http://reviews:8080/from-api' });
  await startApp(reviews, appFile, { NAME: 'reviews' });
  // The sidecars verify the control plane with the root their join token pins (its certificate names every address).
  const url = `https://${cpHost.address}:7400`;
  const sidecars: MycelProcess[] = [];
  for (const h of [reviews, api, web]) {
    const token = await cli('token', 'create', '--service', h.name);
    assert.equal(token.code, 0, token.stderr);
    const tokenFile = join(dir, `${h.name}.token`);
    await writeFile(tokenFile, token.stdout);
    sidecars.push(await startSidecar(bed, h, dir, ['--control', url, '--token', tokenFile, '--state-dir', join(dir, `state-${h.name}`)]));
  }
  // Registration is asynchronous: wait (bounded) until both callees' endpoints are known to the control plane.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [a, r] = [await cli('get', 'endpoints', 'api', '-o', 'json'), await cli('get', 'endpoints', 'reviews', '-o', 'json')];
    if (a.stdout.includes(api.address) && r.stdout.includes(reviews.address)) break;
    if (Date.now() > deadline) assert.fail(`endpoints never registered: ${a.stdout} ${a.stderr} ${r.stdout} ${r.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  // Neither web nor api was told about its callee: the first request's Host makes each sidecar ask.
  await curlAndPythonCallApi(web);
});
