// Endpoint health and circuit breaking end to end (client -> web sidecar -> mTLS -> api sidecars -> apps): outlier
// detection ejects an instance that answers 5xx and takes it back later; active HTTP checks (through the mesh) take a
// failing instance out and put it back; when every instance is unhealthy the set still serves (panic); a destination
// at its request limit answers 503 circuit-open at once; a gRPC instance whose app died is ejected.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closedPort } from '../helpers/http.js';
import { eventually } from '../helpers/control.js';
import { closeAgents, send, spread, startFleet, type Fleet } from '../helpers/fleet.js';
import { startInstanceApp, type InstanceApp } from '../helpers/instance-app.js';
import { echoClient, startGrpcApp, unary, type EchoClientInstance, type GrpcApp } from '../helpers/grpc-app.js';
import { portOf } from '../helpers/sidecars.js';

function policy(spec: string): string {
  return `apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: api-policy }
spec:
  targetRef: { kind: Service, name: api }
  loadBalancer: { type: RoundRobin }
${spec}`;
}

const counts = (m: Map<string, number>) => [...m].map(([k, v]) => `${k}=${v}`).join(' ');

describe('outlier detection and active health checks', () => {
  let apps: InstanceApp[];
  let f: Fleet;
  before(async () => {
    apps = await Promise.all(['a', 'b', 'c'].map((n) => startInstanceApp(n)));
    f = await startFleet({
      instances: apps.map((a) => ({ appPort: a.port })),
      policy: policy('  outlierDetection: { consecutive5xx: 3, baseEjectionTime: 1s, maxEjectionPercent: 50 }\n'),
    });
  });
  after(async () => {
    if (f) closeAgents(f);
    await f?.close();
    await Promise.all(apps.map((a) => a.close()));
  });

  test('an instance answering 5xx is ejected after three in a row, traffic goes to the others, and it comes back later', async () => {
    const c = apps[2]!;
    c.behaviour.status = 500;
    const during = await spread(f, 45);
    assert.equal(during.byInstance.get('c'), 3, `c failed three times, then got nothing (${counts(during.byInstance)})`);
    assert.equal((during.byInstance.get('a') ?? 0) + (during.byInstance.get('b') ?? 0), 42);
    const ejected = await f.web.waitForLog((r) => r.msg === 'endpoint ejected by outlier detection');
    assert.equal(ejected.endpoint, `127.0.0.1:${portOf(f.apis[2]!.inbound)}`);
    assert.match(await f.metrics(), /mycel_outlier_ejections_total\{destination_service="api"\} 1/);
    c.behaviour.status = 200;
    // The ejection lasts 1 s; then c is balanced over again.
    await eventually('c to get traffic again', async () => ((await send(f, '/back')).instance === 'c' ? true : undefined), 10_000);
    const later = await spread(f, 30);
    assert.ok((later.byInstance.get('c') ?? 0) >= 8, `c is back in rotation (${counts(later.byInstance)})`);
  });

  test('active HTTP checks through the mesh take an unhealthy instance out and put it back; all unhealthy: panic, all serve', async () => {
    await f.reconfigure({ policy: policy('  healthCheck: { http: { path: /health }, interval: 200ms, timeout: 150ms, unhealthyThreshold: 2, healthyThreshold: 2 }\n') });
    await send(f, '/start'); // checks start with the first request to the destination
    await eventually('every instance to be checked', async () => (apps.every((a) => a.checks > 0) ? true : undefined));
    const b = apps[1]!;
    b.behaviour.healthy = false;
    await f.web.waitForLog((r) => r.msg === 'endpoint failed its health checks' && r.endpoint === `127.0.0.1:${portOf(f.apis[1]!.inbound)}`, 10_000);
    const out = await spread(f, 30);
    assert.equal(out.byInstance.get('b'), undefined, `b is out (${counts(out.byInstance)})`);
    assert.equal(out.answers.filter((x) => x.status !== 200).length, 0);

    b.behaviour.healthy = true;
    await f.web.waitForLog((r) => r.msg === 'endpoint healthy again' && r.endpoint === `127.0.0.1:${portOf(f.apis[1]!.inbound)}`, 10_000);
    const back = await spread(f, 30);
    assert.equal(back.byInstance.get('b'), 10, `b is back (${counts(back.byInstance)})`);

    // Every instance fails its checks: below the panic threshold the balancer ignores health rather than fail all.
    for (const a of apps) a.behaviour.healthy = false;
    await eventually('all three to be marked unhealthy', async () => {
      const n = f.web.records().filter((r) => r.msg === 'endpoint failed its health checks').length;
      return n >= 4 ? true : undefined; // b once before, then all three
    });
    const panic = await spread(f, 30);
    assert.equal(panic.answers.filter((x) => x.status !== 200).length, 0, 'every request is served');
    assert.deepEqual([...panic.byInstance.keys()].sort(), ['a', 'b', 'c']);
    for (const a of apps) a.behaviour.healthy = true;
  });
});

describe('circuit breaker', () => {
  let apps: InstanceApp[];
  let f: Fleet;
  before(async () => {
    apps = await Promise.all(['a', 'b'].map((n) => startInstanceApp(n)));
    f = await startFleet({ instances: apps.map((a) => ({ appPort: a.port })), policy: policy('  connectionPool: { maxRequests: 2 }\n') });
  });
  after(async () => {
    if (f) closeAgents(f);
    await f?.close();
    await Promise.all(apps.map((a) => a.close()));
  });

  test('over maxRequests a request fails at once with 503 circuit-open naming the limit; the gauge shows the open circuit', async () => {
    for (const a of apps) a.behaviour.hold = true;
    const inFlight = [send(f, '/1'), send(f, '/2')];
    await eventually('two requests to reach the apps', async () => (apps[0]!.held + apps[1]!.held === 2 ? true : undefined));
    const refused = await Promise.all([send(f, '/3'), send(f, '/4'), send(f, '/5')]);
    for (const r of refused) {
      assert.equal(r.status, 503);
      assert.equal(r.error, 'circuit-open');
      assert.match(r.body, /max-requests: 2 requests to api are in flight/);
    }
    assert.match(await f.metrics(), /mycel_circuit_breaker_open\{destination_service="api"\} 1/);
    for (const a of apps) a.release();
    for (const r of await Promise.all(inFlight)) assert.equal(r.status, 200);
    assert.equal((await send(f, '/6')).status, 200, 'the slots are back');
    assert.match(await f.metrics(), /mycel_circuit_breaker_open\{destination_service="api"\} 0/);
  });

  test('over maxConnections a request that needs a new connection is refused (503 circuit-open); reused ones are served', async () => {
    await f.reconfigure({ policy: policy('  connectionPool: { maxConnections: 1 }\n') });
    for (const a of apps) a.behaviour.hold = true;
    const answers = [send(f, '/1'), send(f, '/2'), send(f, '/3'), send(f, '/4')];
    const refused = await Promise.race(answers);
    assert.equal(refused.error, 'circuit-open');
    assert.match(refused.body, /max-connections: \d+ connections to the destination are open/);
    for (const a of apps) a.release();
    const all = await Promise.all(answers);
    const served = all.filter((r) => r.status === 200).length;
    assert.ok(served >= 1 && served + all.filter((r) => r.error === 'circuit-open').length === 4, all.map((r) => r.status).join(','));
  });
});

describe('gRPC: an instance whose app died', () => {
  let grpcApps: GrpcApp[];
  let f: Fleet;
  let client: EchoClientInstance;
  before(async () => {
    grpcApps = await Promise.all([startGrpcApp(), startGrpcApp()]);
    const dead = await closedPort();
    f = await startFleet({
      protocol: 'grpc',
      instances: [{ appPort: grpcApps[0]!.port }, { appPort: grpcApps[1]!.port }, { appPort: dead }],
      policy: policy('  outlierDetection: { consecutive5xx: 2, baseEjectionTime: 60s, maxEjectionPercent: 50 }\n'),
    });
    client = echoClient(f.web.upstreams.api!);
  });
  after(async () => {
    client?.close();
    await f?.close();
    await Promise.all(grpcApps.map((a) => a.close()));
  });

  test('calls answered UNAVAILABLE by its sidecar count as failures: it is ejected after two, and the rest succeed', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 30; i++) codes.push((await unary(client, 'Unary', { text: `call ${i}` })).status.code);
    const failed = codes.filter((c) => c !== 0);
    assert.deepEqual(failed, [14, 14], `codes: ${codes.join(',')}`);
    assert.equal(grpcApps[0]!.calls.length + grpcApps[1]!.calls.length, 28);
    await f.web.waitForLog((r) => r.msg === 'endpoint ejected by outlier detection' && r.endpoint === `127.0.0.1:${portOf(f.apis[2]!.inbound)}`);
  });
});
