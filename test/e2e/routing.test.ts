// Routing end to end: a client -> web sidecar (routes from its --config file) -> mTLS -> one of two api sidecars
// (endpoints labelled version v1 / v2) -> their apps. Header match to the v2 subset, prefix rewrite, redirect, mirror
// (to a live and to a dead target), fault abort and delay, route timeout, no-route 404, and a gRPC method route; then
// routes and subsets served by a control plane, with subsets made of registered endpoints by their labels.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { echoClient, startGrpcApp, unary, type EchoReply, type EchoRequest, type GrpcApp } from '../helpers/grpc-app.js';
import { eventually, startControl, type ControlProcess } from '../helpers/control.js';
import { closedPort, keepAliveClient, request } from '../helpers/http.js';
import { MESH_AND_WEB, portOf, startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

const mesh = MESH_AND_WEB;

/** The destination service with one endpoint per version, and its subsets. */
function apiService(protocol: string, v1Port: number, v2Port: number, dead: number): string {
  return `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 80, appProtocol: ${protocol} } ]
  subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
  endpoints:
    - { address: 127.0.0.1, port: ${v1Port}, labels: { version: v1 } }
    - { address: 127.0.0.1, port: ${v2Port}, labels: { version: v2 } }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: dead }
spec: { ports: [ { port: 80 } ], endpoints: [ { address: 127.0.0.1, port: ${dead} } ] }
`;
}

const httpRoutes = `---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: unavailable }
spec: { abort: { httpStatus: 503 } }
---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: stall }
spec: { delay: { fixedDelay: 1h } }
---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: pause }
spec: { delay: { fixedDelay: 50ms } }
---
apiVersion: mycel.dev/v1alpha1
kind: LocalRateLimit
metadata: { name: two-a-minute }
spec: { requestsPerUnit: 2, unit: minute }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-routes }
spec:
  parentRefs: [ { group: "", kind: Service, name: api, port: 80 } ]
  rules:
  - matches: [ { headers: [ { name: x-version, value: v2 } ] } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v2 } ]
  - matches: [ { path: { type: PathPrefix, value: /store } } ]
    filters: [ { type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /headers } } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v1 } ]
  - matches: [ { path: { type: PathPrefix, value: /old } } ]
    filters: [ { type: RequestRedirect, requestRedirect: { hostname: api.example.com, path: { type: ReplaceFullPath, replaceFullPath: /new } } } ]
  - matches: [ { path: { type: PathPrefix, value: /mirror } } ]
    filters:
    - { type: RequestMirror, requestMirror: { backendRef: { group: mycel.dev, kind: ServiceSubset, name: api.v2 } } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: dead } } }
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v1 } ]
  - matches: [ { path: { type: PathPrefix, value: /fault } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: unavailable } } ]
  - matches: [ { path: { type: PathPrefix, value: /stalled } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: stall } } ]
    timeouts: { request: 300ms }
  - matches: [ { path: { type: PathPrefix, value: /paused } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: pause } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v2 } ]
  - matches: [ { path: { type: PathPrefix, value: /slow } } ]
    timeouts: { request: 300ms }
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v1 } ]
  - matches: [ { path: { type: Exact, value: /hello } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v1 } ]
  - matches: [ { path: { type: PathPrefix, value: /limited } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: LocalRateLimit, name: two-a-minute } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v1 } ]
`;

const grpcRoutes = `---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: exhausted }
spec: { abort: { grpcStatus: 8 } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: echo-methods }
spec:
  parentRefs: [ { name: api } ]
  rules:
  - matches: [ { method: { service: mycel.test.Echo, method: Unary } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v2 } ]
  - matches: [ { method: { service: mycel.test.Echo, method: Fail } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v1 } ]
  - matches: [ { method: { service: mycel.test.Echo, method: Slow } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: exhausted } } ]
`;

interface Mesh {
  dir: string;
  web: SidecarProcess;
  apis: SidecarProcess[];
  close(): Promise<void>;
}

/** Two api sidecars (v1, v2) in front of the two apps, and web with the routes. */
async function startMesh(protocol: string, v1AppPort: number, v2AppPort: number, routes: string): Promise<Mesh> {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-routing-'));
  await writeDevCertificates(dir, { services: ['web', 'api'] });
  const apiConfig = join(dir, 'api.yaml');
  await writeFile(apiConfig, mesh + `---\napiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: api }\nspec: { ports: [ { port: 80, appProtocol: ${protocol} } ] }\n`);
  const apis: SidecarProcess[] = [];
  try {
    for (const appPort of [v1AppPort, v2AppPort]) apis.push(await startSidecar({ dir, service: 'api', appPort, configFiles: [apiConfig] }));
    const webConfig = join(dir, 'web.yaml');
    await writeFile(webConfig, mesh + apiService(protocol, portOf(apis[0]!.inbound), portOf(apis[1]!.inbound), await closedPort()) + routes);
    const web = await startSidecar({ dir, service: 'web', appPort: 1, configFiles: [webConfig], upstreams: ['api=127.0.0.1:0'] });
    return {
      dir,
      web,
      apis,
      async close() {
        await Promise.all([web.stop('SIGKILL'), ...apis.map((a) => a.stop('SIGKILL'))]);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(apis.map((a) => a.stop('SIGKILL')));
    throw err;
  }
}

describe('HTTP routes through real sidecars', () => {
  let v1: TestApp;
  let v2: TestApp;
  let m: Mesh;
  before(async () => {
    [v1, v2] = await Promise.all([startHttpApp(), startHttpApp()]);
    m = await startMesh('http', v1.port, v2.port, httpRoutes);
  });
  after(async () => {
    await m?.close();
    await Promise.all([v1?.close(), v2?.close()]);
  });

  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => request(m.web.outbound, { method, path, headers: { host: 'api', ...headers } });

  test('a header match sends every request to the v2 subset (an Exact path rule still wins over it, as the spec ranks them)', async () => {
    const before2 = v2.seen.length;
    const before1 = v1.seen.length;
    for (let i = 0; i < 6; i++) {
      const r = await get(`/catalog?i=${i}`, { 'x-version': 'v2' });
      assert.equal(r.status, 200);
      assert.equal(v2.seen[v2.seen.length - 1]!.url, `/catalog?i=${i}`);
    }
    assert.equal(v2.seen.length - before2, 6);
    assert.equal(v1.seen.length, before1);
    const exact = await get('/hello', { 'x-version': 'v2' });
    assert.equal(exact.status, 200);
    assert.equal(v1.seen.length, before1 + 1, 'Exact /hello outranks the header match');
  });

  test('a path prefix is rewritten before the request reaches the app', async () => {
    const r = await get('/store/items?color=red');
    assert.equal(r.status, 200);
    const seen = v1.seen[v1.seen.length - 1]!;
    assert.equal(seen.url, '/headers/items?color=red');
    assert.equal(seen.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web');
  });

  test('a redirect is answered by the sidecar with a Location', async () => {
    const before = v1.seen.length + v2.seen.length;
    const r = await get('/old/page?keep=1');
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, 'http://api.example.com/new?keep=1');
    assert.equal(v1.seen.length + v2.seen.length, before);
  });

  test('a mirror: the target gets the copy, a dead target does not affect the caller', async () => {
    const before2 = v2.seen.length;
    const r = await get('/mirror/echo-me', {}, 'POST');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'hello POST /mirror/echo-me\n', 'the caller gets v1\'s answer');
    for (let i = 0; i < 300 && v2.seen.length === before2; i++) await new Promise((res) => setTimeout(res, 10));
    const copy = v2.seen[v2.seen.length - 1]!;
    assert.equal(copy.url, '/mirror/echo-me');
    assert.equal(copy.method, 'POST');
    assert.equal(copy.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web', 'the copy travels over mTLS like any request');
  });

  test('a fault abort answers 503 fault-injected without reaching any app', async () => {
    const before = v1.seen.length + v2.seen.length;
    const r = await get('/fault');
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-mycel-error'], 'fault-injected');
    assert.equal(v1.seen.length + v2.seen.length, before);
  });

  test('a fault delay holds the request: an hour-long one ends at the route timeout, a short one goes through', async () => {
    const before = v1.seen.length + v2.seen.length;
    const held = await get('/stalled');
    assert.equal(held.status, 504);
    assert.equal(held.headers['x-mycel-error'], 'response-timeout');
    assert.equal(v1.seen.length + v2.seen.length, before, 'the held request never left the sidecar');
    const r = await get('/paused');
    assert.equal(r.status, 200);
    assert.equal(v2.seen[v2.seen.length - 1]!.url, '/paused');
  });

  test('a route timeout answers 504 response-timeout while the app is still working', async () => {
    const r = await get('/slow?ms=5000');
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-mycel-error'], 'response-timeout');
  });

  test('a LocalRateLimit on a rule: the burst goes through, then 429 with Retry-After, and other rules are not limited', async () => {
    const seen = v1.seen.length;
    assert.equal((await get('/limited/1')).status, 200);
    assert.equal((await get('/limited/2')).status, 200);
    const over = await get('/limited/3');
    assert.equal(over.status, 429);
    assert.equal(over.headers['x-mycel-error'], 'rate-limited');
    assert.ok(Number(over.headers['retry-after']) >= 1, `retry-after ${over.headers['retry-after']}`);
    assert.deepEqual(v1.seen.slice(seen).map((x) => x.url), ['/limited/1', '/limited/2'], 'the refused request never reached the app');
    assert.equal((await get('/hello')).status, 200);
  });

  test('a request that matches no rule gets 404 no-route', async () => {
    const r = await get('/unknown');
    assert.equal(r.status, 404);
    assert.equal(r.headers['x-mycel-error'], 'no-route');
  });

  test('the route that matched is a label of the request metrics', async () => {
    const r = await request(m.web.admin, { path: '/metrics' });
    const text = r.body.toString();
    assert.match(text, /mycel_requests_total\{direction="outbound",source_service="web",destination_service="api",route="default\/api-routes",method="GET",status_code="200"/);
    assert.match(text, /route="default\/api-routes",method="GET",status_code="302"/);
    assert.match(text, /route="",method="GET",status_code="404"/, 'no route matched: no route label');
  });
});

describe('gRPC routes through real sidecars', () => {
  let v1: GrpcApp;
  let v2: GrpcApp;
  let m: Mesh;
  let client: grpc.Client;
  before(async () => {
    [v1, v2] = await Promise.all([startGrpcApp(), startGrpcApp()]);
    m = await startMesh('grpc', v1.port, v2.port, grpcRoutes);
    client = echoClient(m.web.upstreams.api as string);
  });
  after(async () => {
    client?.close();
    await m?.close();
    await Promise.all([v1?.close(), v2?.close()]);
  });

  test('a method match picks the backend: Unary to v2, Fail to v1', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await unary<EchoRequest, EchoReply>(client, 'Unary', { text: `call ${i}` });
      assert.equal(r.status.code, grpc.status.OK, r.status.details);
    }
    const f = await unary<EchoRequest, EchoReply>(client, 'Fail', { text: 'x' });
    assert.equal(f.status.code, grpc.status.NOT_FOUND, 'the app\'s own status comes through');
    assert.deepEqual(v2.calls, ['Unary', 'Unary', 'Unary', 'Unary']);
    assert.deepEqual(v1.calls, ['Fail']);
  });

  test('a fault abort is a trailers-only response with the Fault\'s grpc-status', async () => {
    const r = await unary<EchoRequest, EchoReply>(client, 'Slow', { delayMs: 0 });
    assert.equal(r.status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(r.status.metadata.get('x-mycel-error'), ['fault-injected']);
    assert.equal(v1.slowCalls.length + v2.slowCalls.length, 0);
  });

  test('a method no rule matches gets UNIMPLEMENTED with x-mycel-error no-route', async () => {
    const r = await unary<EchoRequest, EchoReply>(client, 'Big', Buffer.from('x') as unknown as EchoRequest);
    assert.equal(r.status.code, grpc.status.UNIMPLEMENTED);
    assert.deepEqual(r.status.metadata.get('x-mycel-error'), ['no-route']);
  });
});

describe('routes from a control plane: subsets of registered endpoints by their labels', () => {
  let dir: string;
  let cp: ControlProcess;
  let v1: TestApp;
  let v2: TestApp;
  const sidecars: SidecarProcess[] = [];
  let web: SidecarProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-routing-cp-'));
    await writeDevCertificates(dir, { services: ['web', 'api'] });
    cp = await startControl({ stateDir: join(dir, 'cp'), lease: '3s' });
    await writeFile(
      join(dir, 'routes.yaml'),
      mesh +
        `---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 80, appProtocol: http } ]
  subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-canary }
spec:
  parentRefs: [ { name: api } ]
  rules:
  - matches: [ { headers: [ { name: x-version, value: v2 } ] } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v2 } ]
  - backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v1 } ]
`,
    );
    const applied = await cp.cli(['apply', '-f', join(dir, 'routes.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /httproute\/api-canary created/);
    [v1, v2] = await Promise.all([startHttpApp(), startHttpApp()]);
    for (const [app, version] of [[v1, 'v1'], [v2, 'v2']] as const) {
      sidecars.push(await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: await cp.joinTokenFile('api'), stateDir: join(dir, `state-api-${version}`), labels: { version } } }));
    }
    web = await startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('web'), stateDir: join(dir, 'state-web') } });
    sidecars.push(web);
  });

  after(async () => {
    await Promise.all(sidecars.map((s) => s.stop()));
    await cp?.stop();
    await Promise.all([v1?.close(), v2?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  test('requests with the header reach the endpoint labelled v2, the others the one labelled v1', async () => {
    // Both endpoints register asynchronously; wait until each subset has its endpoint in web's view.
    await eventually('both subsets reachable', async () => {
      const a = await request(web.upstreams.api as string, { path: '/probe', headers: { 'x-version': 'v2' } });
      const b = await request(web.upstreams.api as string, { path: '/probe' });
      return a.status === 200 && b.status === 200 ? true : undefined;
    });
    const seen1 = v1.seen.length;
    const seen2 = v2.seen.length;
    for (let i = 0; i < 4; i++) {
      assert.equal((await request(web.upstreams.api as string, { path: `/v2/${i}`, headers: { 'x-version': 'v2' } })).status, 200);
      assert.equal((await request(web.upstreams.api as string, { path: `/v1/${i}` })).status, 200);
    }
    assert.deepEqual(v2.seen.slice(seen2).map((s) => s.url), ['/v2/0', '/v2/1', '/v2/2', '/v2/3']);
    assert.deepEqual(v1.seen.slice(seen1).map((s) => s.url), ['/v1/0', '/v1/1', '/v1/2', '/v1/3']);
  });

  test('an applied route change is followed at once, with no restart and on the same connection', async () => {
    const client = keepAliveClient(web.upstreams.api as string);
    const get = (path: string) => client.get(path);
    try {
      const before = v1.seen.length;
      assert.deepEqual(await get('/canary/before'), { status: 200, reused: false });
      assert.equal(v1.seen.at(-1)?.url, '/canary/before', 'without a rule for /canary, the default rule sends to v1');
      assert.equal(v1.seen.length, before + 1);
      await writeFile(join(dir, 'canary.yaml'), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-canary-path }
spec:
  parentRefs: [ { name: api } ]
  rules:
  - matches: [ { path: { type: PathPrefix, value: /canary } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v2 } ]
`);
      const applied = await cp.cli(['apply', '-f', join(dir, 'canary.yaml')]);
      assert.equal(applied.code, 0, applied.stderr);
      await eventually('web to have the new route', async () => {
        const c = await request(web.admin, { path: '/config' });
        return c.body.toString().includes('api-canary-path') ? true : undefined;
      });
      assert.deepEqual(await get('/canary/after'), { status: 200, reused: true });
      assert.equal(v2.seen.at(-1)?.url, '/canary/after');
    } finally {
      client.close();
    }
  });

  test('mycel apply refuses a route to a subset the service does not declare, at its file, line and column', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api-bad }
spec:
  parentRefs: [ { name: api } ]
  rules:
  - matches: [ { path: { value: /beta } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api.v3 } ]
`);
    const r = await cp.cli(['apply', '-f', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8:67 spec\\.rules\\[0\\]\\.backendRefs\\[0\\]\\.name: service "default/api" has no subset "v3" \\(its subsets: v1, v2\\)`));
  });
});
