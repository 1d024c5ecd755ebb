// The sidecar's life: admin endpoints, live config reload without dropping connections, invalid config rejected with
// file:line:column while the running config stays, startup refusal with exit code 2, and graceful drain.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { portOf, REPO as REPO_ROOT, startSidecar, startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';
import { request } from '../helpers/http.js';

async function waitUntil(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function configVersion(admin: string): Promise<number> {
  const r = await request(admin, { path: '/config' });
  return (JSON.parse(r.body.toString()) as { version: number }).version;
}

describe('admin endpoints and live config', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  before(async () => {
    app = await startHttpApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http' });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  test('/live, /ready, /config, /endpoints and /metrics answer', async () => {
    assert.equal((await request(mesh.web.admin, { path: '/live' })).status, 200);
    assert.equal((await request(mesh.web.admin, { path: '/ready' })).status, 200);
    const cfg = JSON.parse((await request(mesh.web.admin, { path: '/config' })).body.toString()) as { version: number; identity: string; resources: Array<{ kind: string }> };
    assert.equal(cfg.version, 1);
    assert.equal(cfg.identity, 'spiffe://mycel.local/ns/default/svc/web');
    assert.deepEqual(cfg.resources.map((r) => r.kind).sort(), ['MeshConfig', 'Service', 'Service']);
    const eps = JSON.parse((await request(mesh.web.admin, { path: '/endpoints' })).body.toString()) as Array<{ service: string; endpoints: Array<{ port: number }> }>;
    assert.equal(eps.find((e) => e.service === 'api')?.endpoints[0]?.port, portOf(mesh.api.inbound));
    await request(mesh.web.outbound, { path: '/hello', headers: { host: 'api' } });
    const metrics = (await request(mesh.web.admin, { path: '/metrics' })).body.toString();
    assert.match(metrics, /^mycel_requests_total\{direction="outbound",source_service="web",destination_service="api",route="",method="GET",status_code="200",grpc_status="",retried="false"\} [1-9]/m);
    assert.match(metrics, /^mycel_config_version 1$/m);
    assert.match(metrics, /^mycel_cert_expiry_timestamp_seconds \d{10}$/m);
    const apiMetrics = (await request(mesh.api.admin, { path: '/metrics' })).body.toString();
    assert.match(apiMetrics, /^mycel_requests_total\{direction="inbound",source_service="web",destination_service="api",.*status_code="200".*\} [1-9]/m);
  });

  test('a valid change applies without dropping an open keep-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports: number[] = [];
    const get = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const [h, p] = mesh.web.outbound.split(':');
        const req = http.get({ host: h, port: Number(p), path: '/hello', headers: { host }, agent }, (res) => {
          ports.push(res.socket.localPort ?? 0);
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
      });
    assert.equal(await get('api'), 200);
    const yaml = await readFile(mesh.webConfig, 'utf8');
    await writeFile(mesh.webConfig, yaml + `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: extra }
spec:
  ports: [ { port: 80, appProtocol: http } ]
  hosts: [ extra.example ]
  endpoints: [ { address: 127.0.0.1, port: ${portOf(mesh.api.inbound)} } ]
`);
    await waitUntil(async () => (await configVersion(mesh.web.admin)) === 2, 'config version 2');
    // "extra" has api's sidecar as its endpoint but expects extra's identity: refused, which proves the new config is live.
    assert.equal(await get('extra.example'), 502);
    assert.equal(await get('api'), 200);
    assert.equal(new Set(ports).size, 1, 'all requests used the one client connection opened before the change');
    agent.destroy();
  });

  test('an invalid change is rejected with file:line:column; the running config stays', async () => {
    const before = await configVersion(mesh.web.admin);
    const good = await readFile(mesh.webConfig, 'utf8');
    await writeFile(mesh.webConfig, good.replace('port: 80, appProtocol: http } ]\n  endpoints', 'port: 99999, appProtocol: http } ]\n  endpoints'));
    const rec = await mesh.web.waitForLog((r) => r.msg === 'config change rejected; the running config stays');
    const problems = rec.problems as string[];
    assert.match(problems[0]!, new RegExp(`^${mesh.webConfig.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ spec\\.ports\\[0\\]\\.port: expected a port number <= 65535$`));
    assert.equal(await configVersion(mesh.web.admin), before);
    const r = await request(mesh.web.outbound, { path: '/hello', headers: { host: 'api' } });
    assert.equal(r.status, 200, 'traffic still flows on the last good config');
    const cfg = JSON.parse((await request(mesh.web.admin, { path: '/config' })).body.toString()) as { lastRejected: { problems: string[] } };
    assert.match(cfg.lastRejected.problems[0]!, /expected a port number <= 65535/);
    assert.match((await request(mesh.web.admin, { path: '/metrics' })).body.toString(), /^mycel_config_rejected_total 1$/m);
    await writeFile(mesh.webConfig, good);
  });

  test('replaced certificate files rotate the identity for new handshakes; open connections keep working', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    assert.equal((await request(mesh.web.outbound, { path: '/hello', headers: { host: 'api' }, agent })).status, 200);
    const before = JSON.parse((await request(mesh.api.admin, { path: '/config' })).body.toString()) as { certificateExpires: string };
    // Reissue api's certificate from the same CA with a different lifetime (cert and key are rewritten one after the other).
    await writeDevCertificates(mesh.dir, { services: ['api'], lifetimeSeconds: 7200 });
    await waitUntil(async () => {
      const c = JSON.parse((await request(mesh.api.admin, { path: '/config' })).body.toString()) as { certificateExpires: string };
      return c.certificateExpires !== before.certificateExpires;
    }, 'the api sidecar to load the new certificate');
    const peerNotAfter = await new Promise<string>((resolve, reject) => {
      const [host, port] = mesh.api.inbound.split(':');
      const s = tls.connect({ host, port: Number(port), ca: readFileSync(join(mesh.dir, 'ca.crt')), cert: readFileSync(join(mesh.dir, 'web.crt')), key: readFileSync(join(mesh.dir, 'web.key')), checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] }, () => {
        resolve(s.getPeerCertificate().valid_to);
        s.end();
      });
      s.on('error', reject);
    });
    const after = JSON.parse((await request(mesh.api.admin, { path: '/config' })).body.toString()) as { certificateExpires: string };
    assert.equal(new Date(peerNotAfter).toISOString(), new Date(after.certificateExpires).toISOString(), 'a new handshake gets the new certificate');
    assert.ok(Date.parse(after.certificateExpires) - Date.now() < 3 * 3600_000);
    assert.equal((await request(mesh.web.outbound, { path: '/hello', headers: { host: 'api' }, agent })).status, 200, 'the open client connection still works');
    const fresh = await request(mesh.web.outbound, { path: '/hello', headers: { host: 'api' } });
    assert.equal(fresh.status, 200);
    agent.destroy();
  });

  test('an invalid config at startup exits with code 2 and says where', async () => {
    const bad = join(mesh.dir, 'bad.yaml');
    await writeFile(bad, 'apiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: x }\nspec:\n  ports: [ { port: "eighty" } ]\n');
    await assert.rejects(startSidecar({ dir: mesh.dir, service: 'web', appPort: 1, configFiles: [bad] }), (err: Error) => {
      assert.match(err.message, /exited \(2\)/);
      assert.match(err.message, /bad\.yaml:5:20 spec\.ports\[0\]\.port: expected a number/);
      return true;
    });
  });
});

describe('a sidecar started by a supervisor', () => {
  test('drains and exits when its parent dies, even by SIGKILL (MYCEL_EXIT_WITH_PARENT=1)', async () => {
    const { spawn } = await import('node:child_process');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'mycel-parent-'));
    await writeDevCertificates(dir, { services: ['solo'] });
    const cfg = join(dir, 'mesh.yaml');
    await writeFile(cfg, 'apiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: solo }\nspec: { ports: [ { port: 80 } ] }\n');
    // The parent: a Node process that starts the sidecar, prints its pid, and then just waits.
    const parentCode = `const { spawn } = require('node:child_process');
const c = spawn(process.execPath, [${JSON.stringify(join(REPO_ROOT, 'bin', 'mycel.js'))}, 'proxy', '--service', 'solo', '--app-port', '1', '--config', ${JSON.stringify(cfg)},
  '--inbound', '127.0.0.1:0', '--outbound', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--cert', ${JSON.stringify(join(dir, 'solo.crt'))}, '--key', ${JSON.stringify(join(dir, 'solo.key'))}, '--ca', ${JSON.stringify(join(dir, 'ca.crt'))}],
  { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, MYCEL_EXIT_WITH_PARENT: '1' } });
c.stdout.on('data', (d) => { if (String(d).includes('ready')) console.log('child ' + c.pid); });
setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['-e', parentCode], { stdio: ['ignore', 'pipe', 'inherit'] });
    const childPid = await new Promise<number>((resolve, reject) => {
      let out = '';
      parent.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /child (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      parent.on('exit', () => reject(new Error('parent exited early')));
    });
    parent.kill('SIGKILL');
    await waitUntil(async () => {
      try {
        process.kill(childPid, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the orphaned sidecar to exit');
    await rm(dir, { recursive: true, force: true });
  });
});

describe('graceful drain', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  before(async () => {
    app = await startHttpApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http', meshSpec: 'timeouts: { drain: 10s }' });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  test('SIGTERM: in-flight HTTP/1.1 and HTTP/2 requests finish, readiness drops, new connections are refused, exit 0', async () => {
    const slowH1 = request(mesh.web.outbound, { path: '/slow?ms=1500', headers: { host: 'api' } });
    const h2 = http2.connect(`http://${mesh.apiBinding}`);
    h2.on('error', () => {});
    let goaway = false;
    h2.on('goaway', () => (goaway = true));
    const slowH2 = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const s = h2.request({ ':path': '/slow?ms=1500' });
      let body = '';
      let status = 0;
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('data', (d) => (body += d));
      s.on('end', () => resolve({ status, body }));
      s.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 300)); // both requests are in flight at the app
    mesh.web.proc.kill('SIGTERM');
    await waitUntil(async () => (await request(mesh.web.admin, { path: '/ready' }).catch(() => ({ status: 0 }))).status !== 200, 'readiness to drop');
    await assert.rejects(request(mesh.web.outbound, { path: '/hello', headers: { host: 'api' }, timeoutMs: 2000 }), 'no new connections while draining');
    const [r1, r2] = await Promise.all([slowH1, slowH2]);
    assert.equal(r1.status, 200);
    assert.equal(r1.body.toString(), 'slow done\n');
    assert.deepEqual(r2, { status: 200, body: 'slow done\n' });
    assert.ok(goaway, 'the HTTP/2 client was told to go away');
    const exit = await mesh.web.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    h2.close();
  });

  test('POST /drain on the admin port drains the server-side sidecar too', async () => {
    const r = await request(mesh.api.admin, { method: 'POST', path: '/drain' });
    assert.equal(r.status, 202);
    const exit = await mesh.api.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});
