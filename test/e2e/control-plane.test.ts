// The control plane end to end with the file store: real `mycel control` and `mycel proxy` processes, the registry,
// config pushes, ACK/NACK, invalid applies, and the control plane going away and coming back.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { MESH_API_AND_WEB, eventually, expectWebReachesApi, startControl, type ControlProcess } from '../helpers/control.js';
import { keepAliveClient, request } from '../helpers/http.js';
import { portOf, startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

const BASE = MESH_API_AND_WEB;

interface ProxyItem {
  service: string;
  state: string;
  sentVersion: number | null;
  nack: { reason: string } | null;
}

/** Sends two requests through one keep-alive connection, `between` running in between; proves the connection survived. */
async function twoRequestsOnOneConnection(addr: string, hostA: string, hostB: string, between: () => Promise<void>): Promise<Array<{ status: number; reused: boolean }>> {
  const client = keepAliveClient(addr);
  try {
    const first = await client.get('/first', { host: hostA });
    await between();
    return [first, await client.get('/second', { host: hostB })];
  } finally {
    client.close();
  }
}

describe('control plane (file store) with two sidecars', () => {
  let dir: string;
  let cp: ControlProcess;
  let cpPort: number;
  let app: TestApp;
  let api: SidecarProcess;
  let web: SidecarProcess;
  let webToken: string;

  const startWeb = async () =>
    startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: webToken, stateDir: join(dir, 'state-web') } });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-cp-'));
    await writeDevCertificates(dir, { services: ['web', 'api'] });
    cp = await startControl({ stateDir: join(dir, 'cp'), lease: '3s' });
    cpPort = Number(new URL(cp.url).port);
    await writeFile(join(dir, 'base.yaml'), BASE);
    const applied = await cp.cli(['apply', '-f', join(dir, 'base.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /service\/api created/);
    app = await startHttpApp();
    api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: await cp.joinTokenFile('api'), labels: { version: 'v1', zone: 'a' } } });
    webToken = await cp.joinTokenFile('web');
    web = await startWeb();
  });

  after(async () => {
    await Promise.all([web?.stop(), api?.stop()]);
    await cp?.stop();
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a sidecar registered through the control plane is reachable from another one', async () => {
    await expectWebReachesApi(web.upstreams.api as string, app);
    const eps = await cp.cli(['get', 'endpoints', 'api', '-o', 'json']);
    const items = (JSON.parse(eps.stdout) as { items: Array<{ port: number; labels: Record<string, string>; source: string }> }).items;
    assert.deepEqual(items.map((e) => [e.port, e.labels.version, e.source]), [[portOf(api.inbound), 'v1', 'registered']]);
  });

  test('mycel get proxies shows every proxy with its version ACKed', async () => {
    const items = await eventually('both proxies ACKed', async () => {
      const r = await cp.api<{ items: ProxyItem[] }>('GET', '/api/v1/proxies');
      const acked = r.body.items.filter((p) => p.state === 'ACK');
      return acked.length === 2 ? r.body.items : undefined;
    });
    assert.deepEqual(items.map((p) => p.service).sort(), ['api', 'web']);
    const table = await cp.cli(['get', 'proxies']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^SERVICE\s+PROXY\s+ENDPOINT\s+VERSION\s+STATE/m);
    assert.match(table.stdout, /default\/api .* ACK/);
  });

  test('the control plane reports its own health and metrics', async () => {
    assert.equal((await fetch(cp.url + '/healthz')).status, 200);
    assert.equal((await fetch(cp.url + '/readyz')).status, 200);
    const text = await (await fetch(cp.url + '/metrics')).text();
    assert.match(text, /^mycel_control_connected_proxies 2$/m);
    assert.match(text, /^mycel_control_pushes_total\{result="ack"\} [1-9]\d*$/m);
    assert.match(text, /^mycel_control_config_revision [1-9]\d*$/m);
    assert.match(text, /^mycel_control_push_duration_seconds_count [1-9]\d*$/m);
    // The API itself wants a token.
    assert.equal((await fetch(cp.url + '/api/v1/resources')).status, 401);
  });

  test('an applied change reaches the sidecars with no restart and no dropped connection', async () => {
    const [first, second] = await twoRequestsOnOneConnection(web.outbound, 'api', 'api.example.test', async () => {
      await writeFile(join(dir, 'hosts.yaml'), BASE.replace('ports: [ { port: 80, appProtocol: http } ]\n---', 'ports: [ { port: 80, appProtocol: http } ]\n  hosts: [ api.example.test ]\n---'));
      const r = await cp.cli(['apply', '-f', join(dir, 'hosts.yaml')]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /service\/api configured/);
      assert.match(r.stdout, /meshconfig\/mesh unchanged/);
      await eventually('web to know api.example.test', async () => {
        const c = await request(web.admin, { path: '/config' });
        return c.body.toString().includes('api.example.test') ? true : undefined;
      });
    });
    assert.deepEqual([first, second], [{ status: 200, reused: false }, { status: 200, reused: true }]);
    assert.equal(app.seen.at(-1)?.url, '/second');
    // Applying the same files again changes nothing.
    const again = await cp.cli(['apply', '-f', join(dir, 'hosts.yaml')]);
    assert.match(again.stdout, /service\/api unchanged/);
  });

  test('the first request to a service a sidecar has not called yet asks the control plane for it', async () => {
    await writeFile(join(dir, 'billing.yaml'), `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: billing }
spec:
  external: true
  ports: [ { port: 80, appProtocol: http } ]
  endpoints: [ { address: 127.0.0.1, port: ${app.port} } ]
`);
    assert.equal((await cp.cli(['apply', '-f', join(dir, 'billing.yaml')])).code, 0);
    const before = await request(web.admin, { path: '/config' });
    assert.doesNotMatch(before.body.toString(), /"billing"/, 'web must not hold billing before it calls it');
    const r = await request(web.outbound, { path: '/bill', headers: { host: 'billing' } });
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /hello GET \/bill/);
    // A name nobody answers to fails with the reason; the control plane told the sidecar so (no deadline waited out).
    const miss = await request(web.outbound, { path: '/', headers: { host: 'nosuch.example' } });
    assert.equal(miss.status, 502);
    assert.equal(miss.headers['x-mycel-error'], 'unknown-service');
    const config = JSON.parse((await request(web.admin, { path: '/config' })).body.toString()) as { control: { unresolved: string[] } };
    assert.deepEqual(config.control.unresolved, ['nosuch.example']);
  });

  test('get, get -o yaml|json, apply from stdin, and delete', async () => {
    const yaml = await cp.cli(['get', 'service', 'api', '-o', 'yaml']);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.match(yaml.stdout, /^kind: Service$/m);
    assert.match(yaml.stdout, /^ {2}name: api$/m);
    // Stamped by the control plane at creation (route precedence prefers older routes), kept by later applies.
    assert.match(yaml.stdout, /^ {2}creationTimestamp: "?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"?$/m);
    const list = await cp.cli(['get', 'services']);
    assert.match(list.stdout, /^KIND\s+NAMESPACE\s+NAME\s+SUMMARY$/m);
    assert.match(list.stdout, /^Service\s+default\s+billing\s+ports 80\/http$/m);
    const stdin = await cp.cli(['apply', '-f', '-'], 'apiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: scratch }\nspec: { ports: [ { port: 7 } ] }\n');
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(stdin.stdout.trim(), 'service/scratch created');
    const del = await cp.cli(['delete', 'service', 'scratch']);
    assert.equal(del.stdout.trim(), 'service/scratch deleted');
    const gone = await cp.cli(['get', 'service', 'scratch']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /Service default\/scratch not found/);
    const unknownKind = await cp.cli(['get', 'gizmos']);
    assert.equal(unknownKind.code, 1);
    assert.match(unknownKind.stderr, /unknown kind "gizmos"/);
  });

  test('an invalid apply exits 2 with file:line:column and reason, and nothing of it is stored', async () => {
    const before = await cp.api<{ revision: number }>('GET', '/api/v1/resources');
    await writeFile(
      join(dir, 'bad.yaml'),
      `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: extra }
spec:
  ports: [ { port: 81 } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports:
    - port: 99999
`,
    );
    const r = await cp.cli(['apply', '-f', join(dir, 'bad.yaml')]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /bad\.yaml:12:13 spec\.ports\[0\]\.port: expected a port number <= 65535/);
    const after = await cp.api<{ revision: number }>('GET', '/api/v1/resources');
    assert.equal(after.body.revision, before.body.revision);
    assert.equal((await cp.api('GET', '/api/v1/resources/service/default/extra')).status, 404);
    assert.equal((await request(web.upstreams.api as string, { path: '/still' })).status, 200);
  });

  test('cross-checks run against what is stored, and point into the applied file', async () => {
    await writeFile(join(dir, 'policy.yaml'), `apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: api-policy }
spec:
  targetRef: { kind: Service, name: api }
---
apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ghost-policy }
spec:
  targetRef: { kind: Service, name: ghost }
`);
    const bad = await cp.cli(['apply', '-f', join(dir, 'policy.yaml')]);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /policy\.yaml:11:37 spec\.targetRef\.name: .*ghost/);
    assert.doesNotMatch(bad.stderr, /api-policy|:5:/, 'api is stored, so its policy is fine');
    assert.equal((await cp.api('GET', '/api/v1/resources/trafficpolicy/default/api-policy')).status, 404, 'nothing of a rejected set is stored');
  });

  test('a version a sidecar cannot apply is NACKed with its reason, and the old config keeps serving', async () => {
    await writeFile(join(dir, 'td.yaml'), BASE.replace('trustDomain: mycel.local', 'trustDomain: other.test'));
    const r = await cp.cli(['apply', '-f', join(dir, 'td.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    const nacked = await eventually('web to NACK', async () => {
      const p = await cp.api<{ items: ProxyItem[] }>('GET', '/api/v1/proxies');
      return p.body.items.find((x) => x.service === 'web' && x.state === 'NACK');
    });
    assert.match(nacked.nack?.reason ?? '', /trust domain "other\.test" differs from this proxy's identity spiffe:\/\/mycel\.local/);
    const table = await cp.cli(['get', 'proxies']);
    assert.match(table.stdout, /default\/web .* NACK .*trust domain/);
    assert.equal((await request(web.upstreams.api as string, { path: '/after-nack' })).status, 200);
    // Putting the trust domain back is a new version, which both take.
    await writeFile(join(dir, 'td.yaml'), BASE);
    assert.equal((await cp.cli(['apply', '-f', join(dir, 'td.yaml')])).code, 0);
    await eventually('web to ACK again', async () => {
      const p = await cp.api<{ items: ProxyItem[] }>('GET', '/api/v1/proxies');
      return p.body.items.find((x) => x.service === 'web' && x.state === 'ACK');
    });
  });

  test('a clean shutdown deregisters at once; a killed sidecar leaves when its lease lapses', async () => {
    const count = async () => (await cp.api<{ items: unknown[] }>('GET', '/api/v1/endpoints/default/api')).body.items.length;
    const token = await cp.joinTokenFile('api');
    const second = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: token, stateDir: join(dir, 'state-api-2') } });
    await eventually('two api endpoints', async () => ((await count()) === 2 ? true : undefined));
    await second.stop('SIGTERM');
    // Deregistered by its goodbye, not by the lease running out.
    await cp.waitForLog((r) => r.msg === 'endpoint deregistered' && r.why === 'goodbye', 5000);
    await eventually('one api endpoint after a clean stop', async () => ((await count()) === 1 ? true : undefined));
    const third = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: token, stateDir: join(dir, 'state-api-3') } });
    await eventually('two api endpoints again', async () => ((await count()) === 2 ? true : undefined));
    await third.stop('SIGKILL');
    await eventually('the killed sidecar\'s endpoint to expire', async () => ((await count()) === 1 ? true : undefined), 10_000);
    await cp.waitForLog((r) => r.msg === 'endpoint deregistered' && r.why === 'lease lapsed after the stream closed');
  });

  test('a sidecar may only register for the service of its join token', async () => {
    const wrong = await cp.joinTokenFile('web');
    await assert.rejects(
      startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: wrong, stateDir: join(dir, 'state-wrong') } }),
      /exited \(2\)[\s\S]*the join token is for service default\/web, not default\/api/,
    );
    const eps = await cp.api<{ items: unknown[] }>('GET', '/api/v1/endpoints/default/api');
    assert.equal(eps.body.items.length, 1);
  });

  test('a control plane that stops answering without closing the connection is noticed, and traffic goes on', async () => {
    const logsBefore = cp.records().length;
    cp.proc.kill('SIGSTOP');
    try {
      await web.waitForLog((r) => r.msg === 'control plane stream lost; serving the last good config and reconnecting' && /no answer from the control plane/.test(String(r.reason)), 15_000);
      assert.equal((await request(web.upstreams.api as string, { path: '/cp-frozen' })).status, 200);
    } finally {
      cp.proc.kill('SIGCONT');
    }
    // Frozen for longer than the 3 s lease, the control plane read no heartbeats: it must not take that for dead proxies.
    await cp.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('this replica did not run for a while'), 10_000);
    await eventually('web connected and ACKed again', async () => {
      const r = await cp.api<{ items: Array<ProxyItem & { proxyId: string }> }>('GET', '/api/v1/proxies');
      return r.body.items.some((p) => p.service === 'web' && p.state === 'ACK') ? true : undefined;
    }, 20_000);
    const expired = cp.records().slice(logsBefore).filter((r) => r.msg === 'endpoint deregistered');
    assert.deepEqual(expired.map((r) => r.why), [], 'no endpoint expired for heartbeats the frozen replica could not read');
    assert.equal((await cp.api<{ items: unknown[] }>('GET', '/api/v1/endpoints/default/api')).body.items.length, 1, 'api\'s endpoint outlived the freeze');
  });

  test('without the control plane: traffic goes on, a restarted sidecar serves its persisted config, and both resync', async () => {
    await cp.stop('SIGKILL');
    assert.equal((await request(web.upstreams.api as string, { path: '/cp-down' })).status, 200);
    // Restart web while the control plane is down: it must come up from .../state-web/last-good.json.
    await web.stop('SIGTERM');
    web = await startWeb();
    assert.equal((await request(web.upstreams.api as string, { path: '/cp-down-restarted' })).status, 200);
    await web.waitForLog((r) => r.msg === 'serving the persisted last good config until the control plane answers');
    // The control plane comes back on the same port and state: proxies reconnect and a new change reaches them.
    cp = await startControl({ stateDir: join(dir, 'cp'), lease: '3s', listen: `127.0.0.1:${cpPort}` });
    await eventually('both proxies reconnected', async () => {
      const r = await cp.api<{ items: ProxyItem[] }>('GET', '/api/v1/proxies');
      return r.body.items.filter((p) => p.state === 'ACK').length === 2 ? true : undefined;
    }, 20_000);
    await writeFile(join(dir, 'resync.yaml'), BASE.replace('ports: [ { port: 80, appProtocol: http } ]\n---', 'ports: [ { port: 80, appProtocol: http } ]\n  hosts: [ api.resync.test ]\n---'));
    assert.equal((await cp.cli(['apply', '-f', join(dir, 'resync.yaml')])).code, 0);
    const r = await eventually('a request by the new host name', async () => {
      const x = await request(web.outbound, { path: '/resynced', headers: { host: 'api.resync.test' } });
      return x.status === 200 ? x : undefined;
    });
    assert.match(r.body.toString(), /hello GET \/resynced/);
  });
});
