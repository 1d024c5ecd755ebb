// Every reason of the error catalogue, provoked for real through two sidecars, shows the same way everywhere: the
// `x-mycel-error` field of the answer, the access log line, the tap stream and mycel_mesh_errors_total{reason}.
// Three reasons cannot be provoked end to end, and are checked by unit tests instead:
// - route-invalid: a rule naming something that does not exist is refused when the config loads (files) or is
//   applied (control plane), so a running proxy only meets one in a view that lost a resource; the stack's own test
//   (src/proxy/outbound/logical.test.ts) builds such a plan and checks the 500 and its header. Its telemetry path is
//   the one every exchange takes, checked here for the other reasons.
// - draining: a draining sidecar closes its listeners and every idle connection at once, so no new request can reach
//   it; the refusal it answers to an upgrade or CONNECT racing the drain is tested in
//   src/proxy/transport/http-frontend-refusals.test.ts (real sockets, same telemetry path).
// - internal: a bug in the proxy; there is no request that provokes one on purpose. The same test file shows an
//   internal error going through the one error responder with its header and into telemetry.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERROR_CATALOGUE } from '../../src/core/error-catalogue.js';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, startRawTcp, type TestApp } from '../helpers/apps.js';
import { eventually } from '../helpers/control.js';
import { closedPort, request, type Reply } from '../helpers/http.js';
import { portOf, startTwoSidecars, type SidecarProcess, type TwoSidecars } from '../helpers/sidecars.js';
import { policy } from '../helpers/resource-yaml.js';

type Rec = Record<string, unknown>;

const external = (name: string, port: number) => `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ${name} }
spec:
  external: true
  ports: [ { port: 80, appProtocol: http } ]
  endpoints: [ { address: 127.0.0.1, port: ${port} } ]
`;
const meshService = (name: string, port: number | null) => `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ${name} }
spec:
  ports: [ { port: 80, appProtocol: http } ]
${port === null ? '' : `  endpoints: [ { address: 127.0.0.1, port: ${port} } ]\n`}`;

/** Collects a sidecar's admin /tap stream (every event, no filter) for the whole file. */
function collectTap(admin: string): { events: Rec[]; close(): void } {
  const events: Rec[] = [];
  let rest = '';
  const req = http.get(`http://${admin}/tap`, (res) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) if (l.length > 0) events.push(JSON.parse(l) as Rec);
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  return { events, close: () => req.destroy() };
}

/** Sends raw bytes and returns what came back until the peer closed (or timeoutMs). */
function raw(addr: string, parts: string[], gapMs = 0, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: portOf(addr) });
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.on('close', () => clearTimeout(timer));
    let i = 0;
    const next = () => {
      if (i >= parts.length || s.destroyed) return;
      s.write(parts[i++]!);
      if (gapMs > 0) setTimeout(next, gapMs);
      else next();
    };
    s.once('connect', next);
  });
}

function rawHeader(text: string, name: string): string | undefined {
  const m = new RegExp(`^${name}: (.*)\\r$`, 'mi').exec(text);
  return m?.[1];
}

describe('every mesh error reason, in the header, the access log, tap and the metrics', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  let foreign: tls.Server;
  let foreignDir: string;
  const raws: Array<{ close(): Promise<void> }> = [];
  const taps: Record<'web' | 'api', { events: Rec[]; close(): void }> = {} as never;
  const covered = new Set<string>();

  before(async () => {
    app = await startHttpApp();
    foreignDir = await mkdtemp(join(tmpdir(), 'mycel-foreign-'));
    await writeDevCertificates(foreignDir, { services: ['foreign'] });
    foreign = tls.createServer({ cert: await readFile(join(foreignDir, 'foreign.crt')), key: await readFile(join(foreignDir, 'foreign.key')) }, (s) => s.end());
    await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', () => r()));
    // Accepts and never says a word: no TLS handshake (connect-timeout), no HTTP answer (response-timeout).
    const silent = await startRawTcp((s) => s.on('error', () => {}));
    // Answers anything with bytes that are not HTTP.
    const garbage = await startRawTcp((s) => s.once('data', () => s.end('NOT HTTP AT ALL\r\n\r\n')).on('error', () => {}));
    // Resets every connection once the request arrives.
    const resetting = await startRawTcp((s) => s.once('data', () => s.resetAndDestroy()).on('error', () => {}));
    raws.push(silent, garbage, resetting);
    mesh = await startTwoSidecars({
      apiAppPort: app.port,
      apiProtocol: 'http',
      meshSpec: `telemetry: { accessLog: { enabled: true } }
timeouts: { idle: 2s, connect: 1s, requestHeaders: 1s }
limits: { maxHeaderCount: 30, maxUriBytes: 2048 }`,
      extraWebDocs:
        meshService('empty', null).slice(4) +
        meshService('dead', await closedPort()) +
        meshService('foreign', (foreign.address() as net.AddressInfo).port) +
        meshService('silent', silent.port) +
        external('garbage', garbage.port) +
        external('held', silent.port) +
        policy('held', 'timeout: 500ms\nconnectionPool: { maxRequests: 1 }') +
        external('resetting', resetting.port) +
        policy('resetting', 'retry: { attempts: 3, retryOn: [ reset ], budget: { ratio: 0.01, minRetriesPerSecond: 1, ttl: 10s }, backoff: { baseInterval: 1ms, maxInterval: 2ms } }') +
        external('routed', app.port) +
        `---
apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: no-forbidden }
spec:
  targetRef: { kind: Service, name: api }
  action: DENY
  rules: [ { to: [ { operation: { paths: [ /forbidden ] } } ] } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: abort }
spec: { abort: { httpStatus: 503 } }
---
apiVersion: mycel.dev/v1alpha1
kind: LocalRateLimit
metadata: { name: one-a-minute }
spec: { requestsPerUnit: 1, unit: minute }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: routed }
spec:
  parentRefs: [ { kind: Service, name: routed } ]
  rules:
  - matches: [ { path: { type: PathPrefix, value: /ok } } ]
    backendRefs: [ { name: routed, port: 80 } ]
  - matches: [ { path: { type: PathPrefix, value: /fault } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: abort } } ]
    backendRefs: [ { name: routed, port: 80 } ]
  - matches: [ { path: { type: PathPrefix, value: /limited } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: LocalRateLimit, name: one-a-minute } } ]
    backendRefs: [ { name: routed, port: 80 } ]
`,
    });
    taps.web = collectTap(mesh.web.admin);
    taps.api = collectTap(mesh.api.admin);
    // The taps are open once a request shows up in them.
    await eventually('the taps to be open', async () => {
      await request(mesh.apiBinding, { path: '/hello' });
      return taps.web.events.length > 0 && taps.api.events.length > 0 ? true : undefined;
    });
  });

  after(async () => {
    taps.web?.close();
    taps.api?.close();
    await mesh?.close();
    await app?.close();
    for (const r of raws) await r.close();
    foreign?.close();
    await rm(foreignDir, { recursive: true, force: true });
  });

  const accessLines = (side: SidecarProcess) => side.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Rec);

  async function meshErrors(side: SidecarProcess, code: string): Promise<number> {
    const text = (await request(side.admin, { path: '/metrics' })).body.toString();
    let sum = 0;
    for (const line of text.split('\n')) if (line.startsWith('mycel_mesh_errors_total{') && line.includes(`reason="${code}"`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    return sum;
  }

  /** The reason shows in `side`'s access log, tap and metrics (the header was checked by the caller). */
  async function seenEverywhere(sideName: 'web' | 'api', code: string): Promise<void> {
    const side = mesh[sideName];
    const line = await eventually(`an access log line with error ${code}`, async () => accessLines(side).find((l) => l.error === code));
    const ev = await eventually(`a tap event with error ${code}`, async () => taps[sideName].events.find((e) => e.error === code));
    // Tunnels log and tap their own status; requests show the catalogue's status (or 200 for a gRPC failure).
    if (line.kind === undefined) assert.equal(line.status, ev.status);
    assert.equal(typeof ev.latencyMs, 'number');
    await eventually(`mycel_mesh_errors_total{reason="${code}"}`, async () => ((await meshErrors(side, code)) > 0 ? true : undefined));
    covered.add(code);
  }

  async function answered(r: Reply, code: string, sideName: 'web' | 'api' = 'web'): Promise<void> {
    // The reason, and for a policy denial the policy after it (`denied-by default/no-forbidden`).
    assert.equal(String(r.headers['x-mycel-error']).split(' ')[0], code, `${r.status} ${r.body.toString()}`);
    assert.equal(r.status, ERROR_CATALOGUE[code as keyof typeof ERROR_CATALOGUE].status);
    await seenEverywhere(sideName, code);
  }

  const via = (host: string, path = '/', extra: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {}) =>
    request(mesh.web.outbound, { method: extra.method ?? 'GET', path, headers: { host, ...extra.headers }, timeoutMs: extra.timeoutMs ?? 15_000 });

  test('unknown-service', async () => answered(await via('no-such-service'), 'unknown-service'));
  test('no-endpoints', async () => answered(await via('empty'), 'no-endpoints'));
  test('connect-failed', async () => answered(await via('dead'), 'connect-failed'));
  test('connect-timeout: an endpoint that never completes the TLS handshake', async () => answered(await via('silent'), 'connect-timeout'));
  test('tls-handshake-failed: an endpoint with a certificate of another CA', async () => answered(await via('foreign'), 'tls-handshake-failed'));

  test('peer-identity-mismatch: an endpoint that is another service', async () => {
    const yaml = (await readFile(mesh.webConfig, 'utf8')) + meshService('impostor', portOf(mesh.api.inbound));
    await writeFile(mesh.webConfig, yaml);
    const r = await eventually('the config change', async () => {
      const x = await via('impostor');
      return x.headers['x-mycel-error'] === 'unknown-service' ? undefined : x;
    });
    await answered(r, 'peer-identity-mismatch');
  });

  test('upstream-reset: the app closes the connection (made by the api sidecar)', async () => {
    const r = await request(mesh.apiBinding, { path: '/close' });
    await answered(r, 'upstream-reset', 'api');
  });

  test('denied-by: an AuthorizationPolicy denies the request (made by the api sidecar)', async () => {
    const r = await request(mesh.apiBinding, { path: '/forbidden' });
    assert.equal(r.headers['x-mycel-error'], 'denied-by default/no-forbidden');
    await answered(r, 'denied-by', 'api');
  });

  test('upstream-protocol-error: the upstream answers with something that is not HTTP', async () => answered(await via('garbage'), 'upstream-protocol-error'));
  test('response-timeout: the TrafficPolicy timeout passes', async () => answered(await via('held', '/one'), 'response-timeout'));

  test('circuit-open: over connectionPool.maxRequests', async () => {
    const first = via('held', '/first');
    // The first request holds the only slot until its 500 ms timeout; the second is refused at once.
    const second = await eventually('a refusal while the first is held', async () => {
      const r = await via('held', '/second');
      return r.headers['x-mycel-error'] === 'circuit-open' ? r : undefined;
    });
    await answered(second, 'circuit-open');
    await first;
  });

  test('budget-exhausted: resets, retried until the retry budget is spent', async () => {
    const r = await eventually('the budget to run out', async () => {
      const x = await via('resetting');
      return x.headers['x-mycel-error'] === 'budget-exhausted' ? x : undefined;
    });
    await answered(r, 'budget-exhausted');
  });

  test('idle-timeout: the app stalls mid-response longer than the idle timeout', async () => {
    const r = await request(mesh.apiBinding, { path: '/slow?ms=6000', timeoutMs: 20_000 });
    assert.equal(r.headers['x-mycel-error'], 'idle-timeout');
    assert.equal(r.status, 504);
    // Both sidecars run the same idle timeout; whichever fires first answers and records it.
    const [webSeen, apiSeen] = await Promise.all([meshErrors(mesh.web, 'idle-timeout'), meshErrors(mesh.api, 'idle-timeout')]);
    await seenEverywhere(webSeen > 0 || apiSeen === 0 ? 'web' : 'api', 'idle-timeout');
  });

  test('no-route: no rule of the routes matches', async () => answered(await via('routed', '/elsewhere'), 'no-route'));
  test('fault-injected: a Fault aborts the request', async () => answered(await via('routed', '/fault'), 'fault-injected'));

  test('rate-limited: over a LocalRateLimit', async () => {
    const r = await eventually('the limit to bite', async () => {
      const x = await via('routed', '/limited');
      return x.status === 429 ? x : undefined;
    });
    assert.ok(r.headers['retry-after']);
    await answered(r, 'rate-limited');
  });

  test('bad-request: two Host headers', async () => {
    const text = await raw(mesh.web.outbound, ['GET /two-hosts HTTP/1.1\r\nhost: api\r\nhost: other\r\n\r\n']);
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.equal(rawHeader(text, 'x-mycel-error'), 'bad-request');
    await seenEverywhere('web', 'bad-request');
  });

  test('header-too-large: more header fields than the limit', async () => {
    const fields = Array.from({ length: 40 }, (_, i) => `x-f${i}: ${i}`).join('\r\n');
    const text = await raw(mesh.web.outbound, [`GET /many-fields HTTP/1.1\r\nhost: api\r\n${fields}\r\n\r\n`]);
    assert.match(text, /^HTTP\/1\.1 431 /);
    assert.equal(rawHeader(text, 'x-mycel-error'), 'header-too-large');
    await seenEverywhere('web', 'header-too-large');
  });

  test('uri-too-long: a request target over the limit', async () => answered(await via('api', '/' + 'u'.repeat(3000)), 'uri-too-long'));

  test('request-timeout: a head sent too slowly', async () => {
    const head = [...`GET /slowloris HTTP/1.1\r\nhost: api\r\nx-slow: ${'s'.repeat(40)}\r\n\r\n`];
    const text = await raw(mesh.web.outbound, head, 100, 15_000);
    assert.match(text, /^HTTP\/1\.1 408 /, JSON.stringify(text));
    assert.equal(rawHeader(text, 'x-mycel-error'), 'request-timeout');
    await seenEverywhere('web', 'request-timeout');
  });

  test('protocol-not-supported: CONNECT on an upstream binding', async () => {
    const text = await raw(mesh.apiBinding, ['CONNECT api:80 HTTP/1.1\r\nhost: api:80\r\n\r\n']);
    assert.match(text, /^HTTP\/1\.1 501 /);
    assert.equal(rawHeader(text, 'x-mycel-error'), 'protocol-not-supported');
    await seenEverywhere('web', 'protocol-not-supported');
  });

  test('a refused CONNECT tunnel shows its reason in the access log, tap and metrics too', async () => {
    const text = await raw(mesh.web.outbound, ['CONNECT no-such-host:443 HTTP/1.1\r\nhost: no-such-host:443\r\n\r\n']);
    assert.equal(rawHeader(text, 'x-mycel-error'), 'unknown-service');
    const line = await eventually('the tunnel line', async () => accessLines(mesh.web).find((l) => l.kind === 'connect' && l.error === 'unknown-service'));
    assert.equal(line.destination, 'no-such-host:443');
    await eventually('the tunnel tap event', async () => taps.web.events.find((e) => e.method === 'CONNECT' && e.error === 'unknown-service'));
  });

  test('every reason of the catalogue is covered here or by a named unit test', () => {
    const byUnitTest = ['draining', 'internal', 'route-invalid'];
    const missing = Object.keys(ERROR_CATALOGUE).filter((c) => !covered.has(c) && !byUnitTest.includes(c));
    assert.deepEqual(missing, []);
  });
});
