// Tap end to end: a real control plane, two sidecars under load, `mycel tap` through the CLI with its filters, the
// sidecar's admin /tap directly, and a tap client that stops reading (events dropped and counted, traffic unharmed).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { startCli } from '../helpers/cli-process.js';
import { API_AND_WEB_SERVICES, eventually, startControl, type ControlProcess } from '../helpers/control.js';
import { request } from '../helpers/http.js';
import { startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

const RESOURCES = `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local }
---
${API_AND_WEB_SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-routes }
spec:
  parentRefs: [ { name: api } ]
  rules:
  - backendRefs: [ { name: api, port: 80 } ]
---
apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { kind: Service, name: api }
  retry: { attempts: 2, retryOn: [ 5xx ], budget: { ratio: 1, minRetriesPerSecond: 1000 }, backoff: { baseInterval: 1ms, maxInterval: 2ms } }
`;

type Event = Record<string, unknown>;
const WEB_ID = 'spiffe://mycel.local/ns/default/svc/web';
const API_ID = 'spiffe://mycel.local/ns/default/svc/api';

function parseLines(text: string): Event[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Event);
}

describe('tap', () => {
  let dir: string;
  let cp: ControlProcess;
  let app: TestApp;
  let api: SidecarProcess;
  let web: SidecarProcess;
  let loading = true;
  let load: Promise<void>;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });

  /** Steady traffic through web -> api: GETs, POSTs, 503s (retried twice by the policy) and resets. */
  async function generateLoad(): Promise<void> {
    const paths: Array<[string, string]> = [['GET', '/hello'], ['POST', '/echo'], ['GET', '/status/503'], ['GET', '/close'], ['GET', '/hello/again']];
    for (let i = 0; i < 1_000_000 && loading; i++) {
      const [method, path] = paths[i % paths.length]!;
      await request(web.upstreams.api as string, { method, path, agent, body: method === 'POST' ? 'x' : null, headers: { traceparent: `00-${String(i).padStart(32, '0')}-00f067aa0ba902b7-01` } }).catch(() => {});
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 10)); // steady, not a flood: the machine is shared
    }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-tap-'));
    await writeDevCertificates(dir, { services: ['web', 'api'] });
    cp = await startControl({ stateDir: join(dir, 'cp') });
    await writeFile(join(dir, 'mesh.yaml'), RESOURCES);
    const applied = await cp.cli(['apply', '-f', join(dir, 'mesh.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    app = await startHttpApp();
    api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: await cp.joinTokenFile('api') } });
    web = await startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('web') } });
    await eventually('web reaches api', async () => ((await request(web.upstreams.api as string, { path: '/hello' })).status === 200 ? true : undefined));
    load = generateLoad();
  });

  after(async () => {
    loading = false;
    await load;
    agent.destroy();
    await Promise.all([web?.stop(), api?.stop()]);
    await cp?.stop();
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function cliTap(args: string[]): Promise<{ stdout: string; stderr: string }> {
    const p = startCli(['tap', ...args, '--control', cp.url, '--token', cp.adminTokenFile, '--ca', cp.caFile as string]);
    const exit = await Promise.race([p.exited, new Promise<null>((r) => setTimeout(() => r(null), 60_000))]);
    if (exit === null) await p.stop('SIGKILL');
    assert.deepEqual(exit, { code: 0, signal: null }, p.stderr());
    return { stdout: p.stdout(), stderr: p.stderr() };
  }

  test('mycel tap -o json: both sides of each request, with identities, route, endpoint, retries and trace id', async () => {
    const { stdout } = await cliTap(['api', '--path', '/hello', '--limit', '12', '-o', 'json']);
    const events = parseLines(stdout);
    assert.equal(events.length, 12);
    for (const e of events) {
      assert.match(String(e.path), /^\/hello/);
      assert.equal(e.destinationService, 'api');
      assert.equal(e.status, 200);
      assert.equal(e.error, null);
      assert.equal(typeof e.latencyMs, 'number');
      assert.match(String(e.traceId), /^0{20}\d{12}$/);
      assert.match(String(e.endpoint), /^127\.0\.0\.1:\d+$/);
      if (e.direction === 'outbound') {
        assert.equal(e.sourceService, 'web');
        assert.equal(e.sourceIdentity, WEB_ID);
        assert.equal(e.destinationIdentity, API_ID);
        assert.equal(e.route, 'default/api-routes');
        assert.equal(e.retries, 0);
        assert.match(String(e.proxy), /^web-/);
      } else {
        assert.equal(e.direction, 'inbound');
        assert.equal(e.sourceIdentity, WEB_ID);
        assert.equal(e.destinationIdentity, API_ID);
        assert.match(String(e.proxy), /^api-/);
      }
    }
    assert.ok(events.some((e) => e.direction === 'outbound') && events.some((e) => e.direction === 'inbound'), 'events from both sidecars');
  });

  test('mycel tap prints one aligned line per request', async () => {
    const { stdout, stderr } = await cliTap(['api', '--direction', 'outbound', '--limit', '4']);
    const lines = stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TIME\s+DIR\s+SOURCE -> DESTINATION\s+METHOD\s+PATH\s+STATUS\s+LATENCY\s+ROUTE\s+RETRIES\s+ERROR$/);
    assert.equal(lines.length, 5, stdout);
    for (const l of lines.slice(1)) {
      assert.match(l, /^\d\d:\d\d:\d\d\.\d{3} out web -> api\s+(GET|POST)\s+\/\S*\s+\d{3}\s+\d+\.\dms\s+default\/api-routes\s+\d/);
      assert.equal(l.indexOf(' out '), lines[0]!.indexOf('DIR') - 1, 'columns line up');
    }
    assert.match(stderr, /tapping api/);
  });

  test('filters: method, exact status; retried 503s show their retries', async () => {
    const posts = parseLines((await cliTap(['api', '--method', 'POST', '--limit', '4', '-o', 'json'])).stdout);
    assert.equal(posts.length, 4);
    for (const e of posts) assert.deepEqual([e.method, e.path, e.status], ['POST', '/echo', 200]);
    const failed = parseLines((await cliTap(['api', '--status', '503', '--direction', 'outbound', '--limit', '3', '-o', 'json'])).stdout);
    assert.equal(failed.length, 3);
    for (const e of failed) {
      assert.deepEqual([e.path, e.status, e.retries, e.error], ['/status/503', 503, 2, null]); // attempts: 2 retries, 3 tries
    }
  });

  test('a failure the mesh made carries its reason', async () => {
    const failed = parseLines((await cliTap(['api', '--status', '5xx', '--path', '/close', '--direction', 'inbound', '--limit', '2', '-o', 'json'])).stdout);
    assert.equal(failed.length, 2);
    for (const e of failed) assert.deepEqual([e.status, e.error, e.proxy === undefined], [502, 'upstream-reset', false]);
  });

  test('Ctrl-C ends mycel tap cleanly', async () => {
    const p = startCli(['tap', 'api', '--control', cp.url, '--token', cp.adminTokenFile, '--ca', cp.caFile as string]);
    await p.waitFor(/ out web -> api /);
    const exit = await p.stop('SIGINT');
    assert.deepEqual(exit, { code: 0, signal: null }, p.stderr());
  });

  test('the proxies stop tapping once the last tap client is gone', async () => {
    for (const s of [web, api]) {
      await eventually(`${s.service} has no tap open`, async () => {
        const r = await request(s.admin, { path: '/config' });
        return (JSON.parse(r.body.toString()) as { openTaps: number }).openTaps === 0 ? true : undefined;
      });
    }
  });

  test('a bad tap request is refused with the reason', async () => {
    const noService = await cp.api<{ message: string }>('GET', '/api/v1/tap');
    assert.equal(noService.status, 400);
    assert.match(noService.body.message, /service is required/);
    const bad = await request(web.admin, { path: '/tap?status=7xx' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.toString(), /status/);
    const p = startCli(['tap', 'api', '--status', 'teapot', '--control', cp.url, '--token', cp.adminTokenFile, '--ca', cp.caFile as string]);
    assert.equal((await p.exited).code, 1);
    assert.match(p.stderr(), /status "teapot"/);
  });

  test('the admin /tap of one sidecar streams its own events', async () => {
    const r = await request(web.admin, { path: '/tap?direction=outbound&path=/hello&limit=3', timeoutMs: 30_000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/x-ndjson');
    const events = parseLines(r.body.toString());
    assert.equal(events.length, 3);
    for (const e of events) assert.deepEqual([e.direction, e.sourceService, e.destinationService, e.route], ['outbound', 'web', 'api', 'default/api-routes']);
  });

  test('a tap client that stops reading loses events (counted, told) while traffic flows on', async () => {
    // A raw client that sends the request and then never reads: the sidecar's socket buffers fill, then its tap buffer.
    const [host, port] = [web.admin.slice(0, web.admin.lastIndexOf(':')), Number(web.admin.slice(web.admin.lastIndexOf(':') + 1))];
    const sock = net.connect({ host, port });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.pause();
    sock.write('GET /tap?path=/stall HTTP/1.1\r\nhost: admin\r\n\r\n');
    const pad = 'x'.repeat(2500); // large events fill the socket buffers sooner
    const total = 3000;
    const stallAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    let ok = 0;
    try {
      let next = 0;
      const worker = async () => {
        while (next < total) {
          const i = next++;
          const r = await request(web.upstreams.api as string, { path: `/stall/${i}?pad=${pad}`, agent: stallAgent, timeoutMs: 30_000 });
          if (r.status === 200) ok++;
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    } finally {
      stallAgent.destroy();
    }
    assert.equal(ok, total, 'every request got through while the tap client stalled');
    // Now read what the tap kept: every request is either an event or counted in a dropped notice.
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (text += d));
    sock.resume();
    const counted = () => {
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      const objs = body.split('\n').filter((l) => l.includes('{')).map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Event);
      const events = objs.filter((o) => o.path !== undefined).length;
      const dropped = objs.reduce((a, o) => a + (typeof o.dropped === 'number' ? o.dropped : 0), 0);
      return { events, dropped };
    };
    // One more request flushes a last dropped notice (notices go out with the next write).
    const final = await eventually('every tapped request accounted for', async () => {
      await request(web.upstreams.api as string, { path: '/stall/last' });
      const c = counted();
      return c.events + c.dropped >= total + 1 ? c : undefined;
    }, 30_000);
    sock.destroy();
    assert.ok(final.dropped > 0, 'the stalled client lost events');
    assert.ok(final.events > 0);
    assert.ok(final.events + final.dropped <= total + 100);
  });
});
