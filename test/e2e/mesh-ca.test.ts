// The mesh CA end to end: real `mycel control` and two `mycel proxy` processes that get their certificates from it.
// Leaves live 4 s, so they are renewed many times while load runs, and a root rotation runs under the same load; not
// one request may fail and not one inbound handshake may be refused. Then the control plane goes away and comes back.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { API_AND_WEB_SERVICES, eventually, expectWebReachesApi, startControl, type ControlProcess } from '../helpers/control.js';
import { request, requirePackage, run } from '../helpers/http.js';
import { MYCEL_BIN, startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

/** Leaves of 4 s; keep-alive connections idle for 1 s are closed, so that every burst of load makes new handshakes. */
const MESH = (lifetime: string) => `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  trustDomain: mycel.local
  certificates: { workloadLifetime: ${lifetime}, backdate: 1s }
  timeouts: { clientIdle: 1s }
---
${API_AND_WEB_SERVICES}`;

interface Load {
  ok: number;
  failed: string[];
  bursts: number;
  stop(): Promise<void>;
}

/** Samples the established connections to a port with `ss` until stopped: how many distinct ones (handshakes) there were. */
function countConnections(port: number): { stop(): Promise<number> } {
  const seen = new Set<string>();
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < 10_000; i++) {
      const r = await run('ss', ['-tnH', 'state', 'established', `( dport = :${port} )`]);
      for (const line of r.stdout.split('\n')) {
        const local = line.trim().split(/\s+/)[2];
        if (local !== undefined) seen.add(local);
      }
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen.size;
    },
  };
}

/**
 * Load through web -> api in waves: 8 clients send 5 requests each, then all pause 2.5 s, well past the 1 s
 * keep-alive timeout, so that the pooled sidecar connections close and every wave handshakes anew with whatever
 * certificates and trust bundle the sidecars hold at that moment. (A steady request stream would keep every pooled
 * connection warm and test nothing about new handshakes.)
 */
function startLoad(addr: string): Load {
  const load: Load = { ok: 0, failed: [], bursts: 0, stop: async () => {} };
  let running = true;
  const one = async (path: string) => {
    try {
      const r = await request(addr, { path, timeoutMs: 10_000 });
      if (r.status === 200) load.ok++;
      else load.failed.push(`${path}: ${r.status} ${String(r.headers['x-mycel-error'] ?? '')} ${r.body.toString().slice(0, 200)}`);
    } catch (err) {
      load.failed.push(`${path}: ${(err as Error).message}`);
    }
  };
  const waves = (async () => {
    for (let b = 0; running && b < 1000; b++) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, c) => {
          for (let i = 0; i < 5; i++) await one(`/wave/${b}/${c}/${i}`);
        }),
      );
      load.bursts++;
      await new Promise((r) => setTimeout(r, 2500));
    }
  })();
  load.stop = async () => {
    running = false;
    await waves;
  };
  return load;
}

/** The sum of a counter's series in a sidecar's /metrics (0 when absent). */
async function counter(admin: string, name: string): Promise<number> {
  const text = (await request(admin, { path: '/metrics' })).body.toString();
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

const issued = (p: SidecarProcess, via: string) => p.records().filter((r) => r.msg === 'workload certificate issued' && r.via === via).length;

interface ProxyItem {
  service: string;
  certNotAfter?: number;
  certRoot?: string;
  trustedRoots?: string[];
}

describe('mesh CA with two sidecars', () => {
  let dir: string;
  let cp: ControlProcess;
  let cpPort: number;
  let app: TestApp;
  let api: SidecarProcess;
  let web: SidecarProcess;
  let apiToken: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-mesh-ca-'));
    cp = await startControl({ stateDir: join(dir, 'cp'), lease: '3s' });
    cpPort = Number(new URL(cp.url).port);
    await writeFile(join(dir, 'mesh.yaml'), MESH('4s'));
    const applied = await cp.cli(['apply', '-f', join(dir, 'mesh.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    app = await startHttpApp();
    // A single-use token: the first certificate spends it; the sidecar goes on with its certificate alone.
    const once = await cp.cli(['token', 'create', '--service', 'api', '--single-use', '--ttl', '10m']);
    assert.equal(once.code, 0, once.stderr);
    apiToken = join(dir, 'api.token');
    await writeFile(apiToken, once.stdout, { mode: 0o600 });
    api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], meshCa: true, control: { url: cp.url, tokenFile: apiToken, stateDir: join(dir, 'state-api') } });
    web = await startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], meshCa: true, upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('web'), stateDir: join(dir, 'state-web') } });
  });

  after(async () => {
    await Promise.all([web?.stop(), api?.stop()]);
    await cp?.stop();
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('each sidecar makes its own key (0600 on disk) and gets its identity from its token', async () => {
    await expectWebReachesApi(web.upstreams.api as string, app);
    for (const s of ['api', 'web']) assert.equal((await stat(join(dir, `state-${s}`, 'identity', 'key.pem'))).mode & 0o777, 0o600, s);
    const proxies = await eventually('both proxies report their certificate', async () => {
      const r = await cp.api<{ items: ProxyItem[] }>('GET', '/api/v1/proxies');
      return r.body.items.filter((p) => typeof p.certNotAfter === 'number').length === 2 ? r.body.items : undefined;
    });
    for (const p of proxies) assert.ok((p.certNotAfter as number) > Date.now() - 10_000, `${p.service}: certNotAfter is Unix ms`);
    const check = await cp.cli(['check', '--dir', join(dir, 'cp')]);
    assert.match(check.stdout, /mesh CA \(warns: root or intermediate under 30 days, leaf or API certificate under 1\/4 of its lifetime left\)/);
    assert.match(check.stdout, /API server certificate of replica \S+\s+valid for 2[34] h/);
    assert.match(check.stdout, /root [0-9a-f]{16} \(active\)\s+valid for/);
    assert.match(check.stdout, /intermediate [0-9a-f]{16}\s+valid for/);
    assert.match(check.stdout, /2 proxies report a mesh certificate/);
  });

  test('a sidecar started with a token of another service stops at once and says so', async () => {
    const args = ['proxy', '--service', 'api', '--app-port', '9', '--control', cp.url, '--token', await cp.joinTokenFile('web'), '--state-dir', join(dir, 'state-wrong'), '--inbound', '127.0.0.1:0', '--outbound', '127.0.0.1:0', '--admin', '127.0.0.1:0'];
    const r = await run(process.execPath, [MYCEL_BIN, ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /the join token is for spiffe:\/\/mycel\.local\/ns\/default\/svc\/web, not for default\/api/);
    assert.match(r.stderr, /fix: use a join token for this service/);
  });

  test('4 s leaves are renewed many times under load with no failed request and no refused handshake', async (t) => {
    const before = { api: issued(api, 'renewal'), web: issued(web, 'renewal') };
    const sampling = (await requirePackage(t, 'ss', 'iproute2')) ? countConnections(Number(api.inbound.slice(api.inbound.lastIndexOf(':') + 1))) : null;
    const load = startLoad(web.upstreams.api as string);
    // Until both sidecars renewed at least 5 times (about 10 s at half-life) and 5 waves ran, bounded.
    await eventually('5 renewals on each side and 5 waves of load', async () => (issued(api, 'renewal') - before.api >= 5 && issued(web, 'renewal') - before.web >= 5 && load.bursts >= 5 ? true : undefined), 60_000);
    await load.stop();
    const connections = await sampling?.stop();
    assert.deepEqual(load.failed, [], 'no failed request');
    assert.ok(load.ok >= 200, `load ran: ${load.ok} ok, ${load.bursts} waves`);
    if (connections !== undefined) assert.ok(connections >= 20, `new mTLS connections kept being made across the renewals (${connections} seen)`);
    assert.equal(await counter(api.admin, 'mycel_inbound_handshake_errors_total'), 0, 'api refused no handshake');
    assert.equal(await counter(web.admin, 'mycel_inbound_handshake_errors_total'), 0, 'web refused no handshake');
    const expiry = await counter(web.admin, 'mycel_cert_expiry_timestamp_seconds');
    assert.ok(expiry * 1000 > Date.now(), 'the expiry gauge follows the renewed certificate');
  });

  test('mycel ca rotate under load: both roots trusted, leaves reissued, old root removed, nothing fails', async () => {
    const before = await cp.api<{ activeRoot: string }>('GET', '/api/v1/ca');
    const load = startLoad(web.upstreams.api as string);
    const rotated = await cp.cli(['ca', 'rotate', '--timeout', '60s']);
    assert.equal(rotated.code, 0, rotated.stdout + rotated.stderr);
    assert.match(rotated.stdout, /\[3\/3\]/);
    // A few more waves with only the new root.
    const bursts = load.bursts;
    await eventually('3 more waves', async () => (load.bursts >= bursts + 3 ? true : undefined), 30_000);
    await load.stop();
    assert.deepEqual(load.failed, [], 'no failed request');
    assert.equal(await counter(api.admin, 'mycel_inbound_handshake_errors_total'), 0, 'api refused no handshake');
    const after = await cp.api<{ activeRoot: string; roots: Array<{ fingerprint: string }> }>('GET', '/api/v1/ca');
    assert.notEqual(after.body.activeRoot, before.body.activeRoot);
    assert.deepEqual(after.body.roots.map((r) => r.fingerprint), [after.body.activeRoot], 'only the new root is left');
    const proxies = await cp.api<{ items: ProxyItem[] }>('GET', '/api/v1/proxies');
    for (const p of proxies.body.items) {
      assert.equal(p.certRoot, after.body.activeRoot, `${p.service} holds a leaf from the new root`);
      assert.deepEqual(p.trustedRoots, [after.body.activeRoot], `${p.service} trusts the new root only`);
    }
    // Removing the only root, or one that does not exist, is refused with a reason.
    const refused = await cp.cli(['ca', 'remove-root', after.body.activeRoot.slice(0, 16)]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /still issues certificates/);
  });

  test('without the control plane the sidecars keep serving and retry; once it is back they renew', async () => {
    // 20 s leaves, so that a restart of the control plane fits between the failed renewal and the expiry.
    await writeFile(join(dir, 'mesh.yaml'), MESH('20s'));
    assert.equal((await cp.cli(['apply', '-f', join(dir, 'mesh.yaml')])).code, 0);
    await eventually('both sidecars hold a 20 s certificate', async () => {
      const r = await cp.api<{ items: ProxyItem[] }>('GET', '/api/v1/proxies');
      return r.body.items.length === 2 && r.body.items.every((p) => (p.certNotAfter ?? 0) - Date.now() > 12_000) ? true : undefined;
    }, 30_000);
    await cp.stop();
    const failedRenewals = web.records().filter((r) => r.msg === 'certificate renewal failed; serving with the current one and retrying').length;
    const load = startLoad(web.upstreams.api as string);
    await web.waitForLog((r) => r.msg === 'certificate renewal failed; serving with the current one and retrying' && web.records().filter((x) => x.msg === r.msg).length > failedRenewals, 20_000);
    cp = await startControl({ stateDir: join(dir, 'cp'), lease: '3s', listen: `127.0.0.1:${cpPort}` });
    const renewals = issued(web, 'renewal');
    await eventually('a renewal after the control plane came back', async () => (issued(web, 'renewal') > renewals ? true : undefined), 20_000);
    await load.stop();
    assert.deepEqual(load.failed, [], 'no failed request while the control plane was away');
    assert.equal(await counter(api.admin, 'mycel_inbound_handshake_errors_total'), 0);
  });

  test('a restarted sidecar renews its saved certificate by proof: its spent single-use token is not needed again', async () => {
    await api.stop();
    api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], meshCa: true, control: { url: cp.url, tokenFile: apiToken, stateDir: join(dir, 'state-api') } });
    const first = api.records().find((r) => r.msg === 'workload certificate issued');
    assert.equal(first?.via, 'renewal');
    await eventually('web reaches the restarted api', async () => ((await request(web.upstreams.api as string, { path: '/again' })).status === 200 ? true : undefined), 20_000);
  });
});
