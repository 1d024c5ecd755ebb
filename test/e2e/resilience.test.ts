// Retries, deadlines and rate limits end to end: a client -> web sidecar (TrafficPolicies in its --config file) ->
// mTLS -> two api sidecars in front of apps that misbehave on purpose (fail a fraction, reset, hang, send
// Retry-After), plus a dead endpoint; external services straight to the apps (a POST policy, an always-failing
// destination for the budget, a gRPC deadline probe); an echo gRPC service; and a rate-limited service.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { echoClient, startGrpcApp, unary, type EchoReply, type EchoRequest, type GrpcApp } from '../helpers/grpc-app.js';
import { closedPort, metric, request } from '../helpers/http.js';
import { startMisbehavingApps, type MisbehavingApps } from '../helpers/misbehaving-app.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { portOf, startSidecar, type SidecarProcess } from '../helpers/sidecars.js';
import { policy } from '../helpers/resource-yaml.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const MESH = `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { trustDomain: mycel.local }
`;

const service = (name: string, spec: string) => `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ${name} }
spec:
${spec.trim().replace(/^/gm, '  ')}
`;

const httpRoute = (name: string, rules: string) => `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name} }
spec:
  parentRefs: [ { kind: Service, name: ${name} } ]
  rules:
${rules.trim().replace(/^/gm, '  ')}
`;

/** Inbound rate limit of `limited`, in its own sidecar's config: 5 per minute and caller, so no refill during the test. */
const LIMITED = service('limited', 'ports: [ { port: 80, appProtocol: http } ]') + policy('limited', 'rateLimit: { requestsPerUnit: 5, unit: minute, perSourceIdentity: true }');

/** Runs `n` calls of `one`, `width` at a time. */
async function inBatches<T>(n: number, width: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += width) out.push(...(await Promise.all(Array.from({ length: Math.min(width, n - i) }, (_, j) => one(i + j)))));
  return out;
}

interface ProbeArrival {
  path: string;
  id: string;
  grpcTimeout: string | undefined;
}

/** An h2c server that answers like a gRPC server (trailers-only OK) and records the grpc-timeout of each arrival; /probe.P/Hang never answers, /probe.P/HangFirst not the first time per x-id. */
async function startGrpcProbe(): Promise<{ port: number; arrivals: ProbeArrival[]; close(): Promise<void> }> {
  const arrivals: ProbeArrival[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = String(headers[':path']);
    const id = String(headers['x-id'] ?? '');
    const first = !arrivals.some((a) => a.id === id && a.path === path);
    arrivals.push({ path, id, grpcTimeout: headers['grpc-timeout'] as string | undefined });
    stream.resume();
    if (path === '/probe.P/Hang' || (path === '/probe.P/HangFirst' && first)) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  return { port, arrivals, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** One gRPC-shaped call over h2c (an empty message), returning the response's header fields and trailers merged. */
function rawGrpc(addr: string, authority: string, path: string, headers: Record<string, string>): Promise<Record<string, string | undefined>> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${addr}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const got: Record<string, string | undefined> = {};
    const take = (h: http2.IncomingHttpHeaders) => {
      for (const [k, v] of Object.entries(h)) got[k] = Array.isArray(v) ? v.join(',') : (v as string | undefined);
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('error', reject);
    req.resume();
    req.on('close', () => {
      session.close();
      resolve(got);
    });
    req.setTimeout(15_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.end(Buffer.alloc(5));
  });
}

describe('retries, deadlines and rate limits through real sidecars', () => {
  let dir: string;
  let apps: MisbehavingApps;
  let echoApp: GrpcApp;
  let probe: Awaited<ReturnType<typeof startGrpcProbe>>;
  let web: SidecarProcess;
  let api1: SidecarProcess;
  let limited: SidecarProcess;
  const sidecars: SidecarProcess[] = [];
  let echo: grpc.Client;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-resilience-'));
    [apps, echoApp, probe] = await Promise.all([startMisbehavingApps(['a', 'b'], seededRandom(11)), startGrpcApp(), startGrpcProbe(), writeDevCertificates(dir, { services: ['web', 'api', 'echo', 'limited'] })]);
    const a = apps.apps[0]!;
    const b = apps.apps[1]!;
    const write = async (name: string, text: string) => {
      const f = join(dir, name);
      await writeFile(f, MESH + text);
      return f;
    };
    const started = async (p: Promise<SidecarProcess>) => {
      const s = await p;
      sidecars.push(s);
      return s;
    };
    // The called services first: their inbound ports go into their callers' configs.
    const limitedConfig = await write('limited.yaml', LIMITED);
    const echoConfig = await write('echo.yaml', service('echo', 'ports: [ { port: 80, appProtocol: grpc } ]'));
    let echoSidecar: SidecarProcess;
    [limited, echoSidecar] = await Promise.all([
      started(startSidecar({ dir, service: 'limited', appPort: a.port, configFiles: [limitedConfig] })),
      started(startSidecar({ dir, service: 'echo', appPort: echoApp.port, configFiles: [echoConfig] })),
    ]);
    const limitedService = service('limited', `ports: [ { port: 80, appProtocol: http } ]\nendpoints: [ { address: 127.0.0.1, port: ${portOf(limited.inbound)} } ]`);
    // api sidecars call `limited` too: the second caller identity of the rate-limit tests.
    const apiConfig = await write('api.yaml', service('api', 'ports: [ { port: 80, appProtocol: http } ]') + limitedService);
    let api2: SidecarProcess;
    [api1, api2] = await Promise.all([
      started(startSidecar({ dir, service: 'api', appPort: a.port, configFiles: [apiConfig] })),
      started(startSidecar({ dir, service: 'api', appPort: b.port, configFiles: [apiConfig] })),
    ]);
    const dead = await closedPort();
    const webConfig = await write(
      'web.yaml',
      service('web', 'ports: [ { port: 80 } ]') +
        limitedService +
        service(
          'api',
          `ports: [ { port: 80, appProtocol: http } ]
subsets: [ { name: live, labels: { live: "yes" } } ]
endpoints:
  - { address: 127.0.0.1, port: ${portOf(api1.inbound)}, labels: { live: "yes" } }
  - { address: 127.0.0.1, port: ${portOf(api2.inbound)}, labels: { live: "yes" } }
  - { address: 127.0.0.1, port: ${dead} }`,
        ) +
        // Round robin on purpose: consecutive attempts of a request go to different endpoints.
        policy(
          'api',
          `loadBalancer: { type: RoundRobin }
retry:
  attempts: 3
  perTryTimeout: 400ms
  retryOn: [ 5xx, reset, connect-failure, refused-stream ]
  budget: { ratio: 1, minRetriesPerSecond: 1000 }
  backoff: { baseInterval: 1ms, maxInterval: 5ms }`,
        ) +
        httpRoute(
          'api',
          `- matches: [ { path: { type: PathPrefix, value: /with-dead } } ]
  backendRefs: [ { name: api, port: 80 } ]
- backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.live } ]`,
        ) +
        service('post', `external: true\nports: [ { port: 80, appProtocol: http } ]\nendpoints: [ { address: 127.0.0.1, port: ${b.port} } ]`) +
        policy('post', 'retry: { attempts: 2, retryOn: [ 5xx ], retryNonIdempotent: true, backoff: { baseInterval: 1ms, maxInterval: 2ms } }') +
        // Without a perTryTimeout, a rule's backendRequest timeout bounds each try (each is a request to the backend).
        httpRoute(
          'post',
          `- matches: [ { headers: [ { name: x-backend-timeout, value: "1" } ] } ]
  timeouts: { request: 5s, backendRequest: 300ms }
  backendRefs: [ { name: post, port: 80 } ]
- backendRefs: [ { name: post, port: 80 } ]`,
        ) +
        service('down', `external: true\nports: [ { port: 80, appProtocol: http } ]\nendpoints: [ { address: 127.0.0.1, port: ${a.port} } ]`) +
        policy('down', 'retry: { attempts: 3, retryOn: [ 5xx ], budget: { ratio: 0.2, minRetriesPerSecond: 1, ttl: 10s }, backoff: { baseInterval: 1ms, maxInterval: 2ms } }') +
        // At most one retry in flight towards capped: concurrent hanging requests cannot all retry.
        service('capped', `external: true\nports: [ { port: 80, appProtocol: http } ]\nendpoints: [ { address: 127.0.0.1, port: ${a.port} } ]`) +
        policy('capped', 'connectionPool: { maxRetries: 1 }\nretry: { attempts: 2, perTryTimeout: 200ms, retryOn: [ 5xx ], budget: { ratio: 1, minRetriesPerSecond: 1000 }, backoff: { baseInterval: 1ms, maxInterval: 2ms } }') +
        service('slow', `external: true\nports: [ { port: 80, appProtocol: http } ]\nendpoints: [ { address: 127.0.0.1, port: ${a.port} } ]`) +
        policy('slow', 'timeout: 300ms') +
        httpRoute(
          'slow',
          `- matches: [ { path: { type: PathPrefix, value: /route-timeout } } ]
  timeouts: { request: 800ms }
  backendRefs: [ { name: slow, port: 80 } ]
- backendRefs: [ { name: slow, port: 80 } ]`,
        ) +
        service('echo', `ports: [ { port: 80, appProtocol: grpc } ]\nendpoints: [ { address: 127.0.0.1, port: ${portOf(echoSidecar.inbound)} } ]`) +
        policy('echo', 'retry: { attempts: 2, retryOn: [ unavailable ], backoff: { baseInterval: 1ms, maxInterval: 2ms } }') +
        service('probe', `external: true\nports: [ { port: 80, appProtocol: grpc } ]\nendpoints: [ { address: 127.0.0.1, port: ${probe.port} } ]`) +
        policy('probe', 'timeout: 2s\nretry: { attempts: 1, perTryTimeout: 300ms, retryOn: [ 5xx ], retryNonIdempotent: true, backoff: { baseInterval: 1ms, maxInterval: 2ms } }'),
    );
    web = await started(startSidecar({ dir, service: 'web', appPort: 1, configFiles: [webConfig], upstreams: ['echo=127.0.0.1:0', 'probe=127.0.0.1:0'] }));
    echo = echoClient(web.upstreams.echo as string);
  });

  after(async () => {
    echo?.close();
    await Promise.all(sidecars.map((s) => s.stop('SIGKILL')));
    await Promise.all([apps?.close(), echoApp?.close(), probe?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = (path: string, host = 'api', extra: { method?: string; body?: Buffer } = {}) =>
    request(web.outbound, { method: extra.method ?? 'GET', path, headers: { host, ...(extra.body ? { 'content-length': String(extra.body.length) } : {}) }, body: extra.body ?? null });

  test('retries turn most of a 30% share of 503s into successes', async () => {
    const before503 = await metric(web.admin, 'mycel_retries_total', { destination_service: 'api', reason: '503' });
    const n = 300;
    const replies = await inBatches(n, 10, () => get('/flaky?p=0.3'));
    const ok = replies.filter((r) => r.status === 200).length;
    const arrived = apps.count('/flaky');
    const failedAtApp = apps.arrivals.filter((x) => x.path === '/flaky').length - ok;
    // Each try fails with p = 0.3; with three retries a request fails only if all four do (under 1%).
    assert.ok(failedAtApp / arrived > 0.2 && failedAtApp / arrived < 0.4, `the apps failed ${failedAtApp} of ${arrived} tries`);
    assert.ok(ok / n >= 0.97, `${ok} of ${n} requests succeeded (without retries about 70% would)`);
    assert.ok(arrived > n * 1.25, `retries reached the apps: ${arrived} tries for ${n} requests`);
    assert.ok((await metric(web.admin, 'mycel_retries_total', { destination_service: 'api', reason: '503' })) - before503 >= arrived - n - 5);
    assert.ok((await metric(web.admin, 'mycel_requests_total', { direction: 'outbound', destination_service: 'api', retried: 'true', status_code: '200' })) > 0);
  });

  test('a POST is not retried on a 503, unless the policy says retryNonIdempotent', async () => {
    const body = Buffer.from('order=42');
    const r = await get('/fail-first?id=post-api', 'api', { method: 'POST', body });
    assert.equal(r.status, 503);
    assert.equal(apps.of('post-api').length, 1, 'the app saw the POST once');
    const r2 = await get('/fail-first?id=post-ok', 'post', { method: 'POST', body });
    assert.equal(r2.status, 200);
    const seen = apps.of('post-ok');
    assert.equal(seen.length, 2);
    for (const s of seen) assert.equal(s.bodySha256, sha(body), 'each attempt carried the whole body');
  });

  test('a body over 64 KiB is not retried and arrives intact; a small one is replayed intact', async () => {
    const big = randomBytes(100 * 1024);
    const r = await get('/fail-first?id=big&n=5', 'api', { method: 'PUT', body: big });
    assert.equal(r.status, 503, 'the 503 goes to the client: the body could not be replayed');
    const seen = apps.of('big');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.bodyBytes, big.length);
    assert.equal(seen[0]!.bodySha256, sha(big));
    const small = randomBytes(10 * 1024);
    const r2 = await get('/fail-first?id=small', 'api', { method: 'PUT', body: small });
    assert.equal(r2.status, 200);
    assert.deepEqual(apps.of('small').map((s) => s.bodySha256), [sha(small), sha(small)]);
  });

  test('a connect failure to a dead endpoint is retried onto a live one', async () => {
    const before = await metric(web.admin, 'mycel_retries_total', { destination_service: 'api', reason: 'connect-failure' });
    const replies = await inBatches(9, 1, (i) => get(`/with-dead?id=dead-${i}`));
    assert.deepEqual(replies.map((r) => r.status), Array(9).fill(200));
    assert.equal(apps.count('/with-dead'), 9, 'each request reached an app exactly once');
    assert.ok((await metric(web.admin, 'mycel_retries_total', { destination_service: 'api', reason: 'connect-failure' })) - before >= 2, 'round robin over three endpoints met the dead one');
  });

  test('a connection the app resets before answering is retried (reset in retryOn)', async () => {
    const before = await metric(web.admin, 'mycel_retries_total', { destination_service: 'api', reason: 'reset' });
    const r = await get('/reset-first?id=reset-1&n=2');
    assert.equal(r.status, 200);
    assert.equal(apps.of('reset-1').length, 3);
    assert.ok((await metric(web.admin, 'mycel_retries_total', { destination_service: 'api', reason: 'reset' })) > before);
  });

  test('a hanging endpoint is given up after perTryTimeout and the request retried on the other one', async () => {
    const r = await get('/hang-first?id=hang-1');
    assert.equal(r.status, 200);
    const seen = apps.of('hang-1');
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0]!.app, seen[1]!.app, 'the retry went elsewhere');
    assert.ok((await metric(web.admin, 'mycel_retries_total', { destination_service: 'api', reason: 'timeout' })) >= 1);
  });

  test('a route\'s backendRequest timeout bounds each try, so a hanging first try is retried', async () => {
    const r = await request(web.outbound, { path: '/hang-first?id=bt-1', headers: { host: 'post', 'x-backend-timeout': '1' } });
    assert.equal(r.status, 200);
    assert.equal(apps.of('bt-1').length, 2, 'the first try was given up after 300 ms and retried');
  });

  test('connectionPool.maxRetries caps the retries in flight: of six hanging requests at once, one retries', async () => {
    const ids = Array.from({ length: 6 }, (_, i) => `cap-${i}`);
    const replies = await Promise.all(ids.map((id) => get(`/hang?id=${id}`, 'capped')));
    assert.ok(replies.every((r) => r.status === 504), replies.map((r) => r.status).join(','));
    const tries = ids.map((id) => apps.of(id).length);
    // Uncapped, each would be tried 3 times (18 in all); with one retry slot, one request retries (twice) at most.
    assert.equal(tries.filter((n) => n > 1).length, 1, `tries per request: ${tries.join(',')}`);
    assert.ok(tries.reduce((x, y) => x + y, 0) <= 8);
  });

  test('Retry-After is honoured, and one asking for too long is not waited for', async () => {
    const r = await get('/fail-first?id=ra-1&retry-after=1');
    assert.equal(r.status, 200);
    const seen = apps.of('ra-1');
    assert.equal(seen.length, 2);
    assert.ok(seen[1]!.at - seen[0]!.at >= 900, `the retry waited ${seen[1]!.at - seen[0]!.at} ms of the 1 s asked`);
    const r2 = await get('/fail-first?id=ra-2&retry-after=3600');
    assert.equal(r2.status, 503);
    assert.equal(r2.headers['retry-after'], '3600');
    assert.equal(apps.of('ra-2').length, 1);
  });

  test('under 100% upstream failure, retries stay within the budget', async () => {
    const n = 300;
    const replies = await inBatches(n, 10, () => get('/always?status=503', 'down'));
    assert.ok(replies.every((r) => r.status === 503));
    const tries = apps.count('/always');
    // Budget: ratio 0.2 of the requests plus 1 per second over a 10 s window; without it, 4 tries per request.
    const bound = n * (1 + 0.2) + 1 * 10;
    assert.ok(tries >= n && tries <= bound * 1.05, `${tries} tries for ${n} requests (budget bound ${bound})`);
    assert.ok((await metric(web.admin, 'mycel_retry_budget_exhausted_total', { destination_service: 'down' })) >= n - (tries - n));
  });

  test('the TrafficPolicy timeout bounds a request; a route timeout takes precedence over it', async () => {
    const r = await get('/hang', 'slow');
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-mycel-error'], 'response-timeout');
    assert.match(r.body.toString(), /TrafficPolicy timeout/);
    const r2 = await get('/route-timeout/hang', 'slow');
    assert.equal(r2.status, 504);
    assert.match(r2.body.toString(), /route's request timeout \(800 ms/);
  });

  test('gRPC UNAVAILABLE is retried (trailers-only, and with the status in trailers after headers)', async () => {
    for (const headersFirst of [false, true]) {
      const id = `grpc-${headersFirst}`;
      const r = await unary<EchoRequest, EchoReply>(echo, 'Flaky', { text: id, headersFirst });
      assert.equal(r.error, null, String(r.error));
      assert.equal(r.reply?.count, 2, 'the second arrival answered');
    }
    const r = await unary<EchoRequest, EchoReply>(echo, 'Flaky', { text: 'grpc-always', failures: 10 });
    assert.equal(r.status.code, grpc.status.UNAVAILABLE);
    assert.equal(echoApp.calls.filter((c) => c === 'Flaky').length, 2 + 2 + 3);
  });

  test('grpc-timeout is honoured: the request fails with DEADLINE_EXCEEDED when it passes', async () => {
    const r = await rawGrpc(web.upstreams.probe as string, 'probe', '/probe.P/Hang', { 'grpc-timeout': '200m', 'x-id': 'deadline-1' });
    assert.equal(r['grpc-status'], '4');
    assert.equal(r['x-mycel-error'], 'response-timeout');
  });

  test('the deadline travels upstream as the time left: smaller at each retry, and capped by the policy timeout', async () => {
    const r = await rawGrpc(web.upstreams.probe as string, 'probe', '/probe.P/HangFirst', { 'grpc-timeout': '5S', 'x-id': 'deadline-2' });
    assert.equal(r['grpc-status'], '0');
    const [first, second] = probe.arrivals.filter((a) => a.id === 'deadline-2').map((a) => Number(/^(\d+)m$/.exec(a.grpcTimeout ?? '')?.[1]));
    assert.ok(first! <= 2000 && first! > 1500, `first try: grpc-timeout ${first} ms, the 2 s policy timeout being smaller than the client's 5 s`);
    assert.ok(second! <= first! - 250, `second try: ${second} ms, after a 300 ms per-try timeout`);
    await rawGrpc(web.upstreams.probe as string, 'probe', '/probe.P/Ok', { 'grpc-timeout': '1S', 'x-id': 'deadline-3' });
    const got = probe.arrivals.find((a) => a.id === 'deadline-3')?.grpcTimeout ?? '';
    assert.match(got, /^\d+m$/);
    assert.ok(Number(got.slice(0, -1)) <= 1000, `the app saw grpc-timeout ${got} for the client's 1S`);
  });

  test('rate limit: 429 with Retry-After after the burst, one bucket per calling identity, RESOURCE_EXHAUSTED for gRPC', async () => {
    const fromWeb = await inBatches(6, 1, () => get('/limited-web', 'limited'));
    assert.deepEqual(fromWeb.map((r) => r.status), [200, 200, 200, 200, 200, 429]);
    const limitedReply = fromWeb[5]!;
    assert.equal(limitedReply.headers['x-mycel-error'], 'rate-limited');
    const after = Number(limitedReply.headers['retry-after']);
    assert.ok(after >= 1 && after <= 12, `Retry-After ${limitedReply.headers['retry-after']} (one request per 12 s)`);
    assert.equal(apps.count('/limited-web'), 5, 'the limited request never reached the app');
    // api's sidecar calls limited as another identity: its own bucket is full.
    const fromApi = await inBatches(6, 1, () => request(api1.outbound, { path: '/limited-api', headers: { host: 'limited' } }));
    assert.deepEqual(fromApi.map((r) => r.status), [200, 200, 200, 200, 200, 429]);
    const g = await rawGrpc(web.outbound, 'limited', '/probe.P/Ok', {});
    assert.equal(g['grpc-status'], '8');
    assert.equal(g['x-mycel-error'], 'rate-limited');
    assert.ok(Number(g['retry-after']) >= 1);
    assert.equal(await metric(limited.admin, 'mycel_rate_limited_total', { destination_service: 'limited', source_service: 'web' }), 2);
    assert.equal(await metric(limited.admin, 'mycel_rate_limited_total', { destination_service: 'limited', source_service: 'api' }), 1);
  });
});
