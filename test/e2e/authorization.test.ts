// AuthorizationPolicy end to end: real sidecars, an app that records what reached it, and outside clients (raw TLS
// with mesh certificates, curl, HTTP/2, gRPC). Denied requests get 403 / PERMISSION_DENIED with x-mycel-error
// `denied-by <namespace/policy>` and never reach the app; path tricks cannot slip past a DENY rule, and the path the
// app receives is the one that was checked.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { issueWorkloadCert, loadDevCa } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { echoClient, startGrpcApp, unary, type EchoClientInstance, type GrpcApp } from '../helpers/grpc-app.js';
import { metric, request, requirePackage, run } from '../helpers/http.js';
import { meshClientTls, parseResponses, rawExchange, sleep, targetOf, type ParsedResponse } from '../helpers/raw-http.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';

const WEB = 'spiffe://mycel.local/ns/default/svc/web';
const BATCH = 'spiffe://mycel.local/ns/default/svc/batch';

/** api's policies: no /admin (any case), no /secret (exact case), web may GET/HEAD/POST, batch may open TCP tunnels. */
const POLICIES = `apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: no-admin }
spec:
  targetRef: { kind: Service, name: api }
  action: DENY
  rules: [ { to: [ { operation: { paths: [ /admin, /admin/* ], ignorePathCase: true } } ] } ]
---
apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: no-secret }
spec:
  targetRef: { kind: Service, name: api }
  action: DENY
  rules: [ { to: [ { operation: { paths: [ /secret ] } } ] } ]
---
apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web-reads }
spec:
  targetRef: { kind: Service, name: api }
  action: ALLOW
  rules:
  - from: [ { source: { principals: [ ${WEB} ] } } ]
    to: [ { operation: { methods: [ GET, HEAD, POST ] } } ]
---
apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: batch-tcp }
spec:
  targetRef: { kind: Service, name: api }
  action: ALLOW
  rules: [ { from: [ { source: { services: [ batch ] } } ], to: [ { operation: { ports: [ 80 ] } } ] } ]
`;

const ALLOW_IDS = 'default/web-reads,default/batch-tcp';

describe('AuthorizationPolicy on the inbound sidecar (HTTP/1.1, HTTP/2, TCP, upgrades)', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  let webTls: Awaited<ReturnType<typeof meshClientTls>>;

  before(async () => {
    app = await startHttpApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http', extraWebDocs: POLICIES });
    webTls = await meshClientTls(mesh.dir, 'web');
    // A third identity, from the same CA.
    const ca = await loadDevCa(await readFile(join(mesh.dir, 'ca.crt'), 'utf8'), await readFile(join(mesh.dir, 'ca.key'), 'utf8'));
    const batch = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'batch' });
    await writeFile(join(mesh.dir, 'batch.crt'), batch.certPem);
    await writeFile(join(mesh.dir, 'batch.key'), batch.keyPem);
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  async function configVersion(): Promise<number> {
    return (JSON.parse((await request(mesh.api.admin, { path: '/config' })).body.toString()) as { version: number }).version;
  }

  /** One HTTP/1.1 request on a fresh mTLS connection to api's inbound port, as `who`, with the request target as given. */
  async function send(target: string, o: { method?: string; headers?: string[]; who?: string } = {}): Promise<ParsedResponse> {
    const tlsOpts = o.who === undefined ? webTls : await meshClientTls(mesh.dir, o.who);
    const extra = (o.headers ?? []).map((h) => `${h}\r\n`).join('');
    const r = await rawExchange(targetOf(mesh.api.inbound, tlsOpts), `${o.method ?? 'GET'} ${target} HTTP/1.1\r\nHost: api\r\n${extra}Connection: close\r\n\r\n`);
    const res = parseResponses(r.data)[0];
    assert.ok(res !== undefined, `a response to ${target}: ${JSON.stringify(r.data.toString('latin1').slice(0, 200))}`);
    return res;
  }

  /** Sends and asserts the status (and for 403 the policy), that nothing reached the app when refused, and what the app saw otherwise. */
  async function expect(target: string, status: number, o: { method?: string; headers?: string[]; who?: string; deniedBy?: string; appSees?: string } = {}): Promise<ParsedResponse> {
    const before = app.seen.length;
    const res = await send(target, o);
    assert.equal(res.status, status, `${o.method ?? 'GET'} ${target}: ${res.body.toString()}`);
    if (status === 403) assert.equal(res.headers['x-mycel-error'], `denied-by ${o.deniedBy ?? 'default/no-admin'}`);
    if (status === 400) assert.ok(res.headers['x-mycel-error'] === 'bad-request' || res.headers['x-mycel-error'] === undefined, `400 from the mesh or Node's parser`);
    if (status >= 400) {
      await sleep(50);
      assert.equal(app.seen.length, before, `${target}: nothing reached the app`);
    } else {
      assert.equal(app.seen.length, before + 1, `${target} reached the app`);
      assert.equal(app.seen[app.seen.length - 1]!.url, o.appSees ?? target, 'the app got the normalised path');
    }
    return res;
  }

  test('allowed requests reach the app with the verified identity', async () => {
    await expect('/hello', 200);
    await expect('/hello?x=1', 200, { method: 'POST', headers: ['Content-Length: 0'] });
    assert.equal(app.seen[app.seen.length - 1]!.headers['x-mycel-peer-identity'], WEB);
  });

  test('a DENY rule matches; an unmatched request is denied by the ALLOW policies; another identity is denied', async () => {
    await expect('/admin', 403);
    await expect('/admin/users', 403);
    await expect('/hello', 403, { method: 'DELETE', deniedBy: ALLOW_IDS });
    await expect('/hello', 403, { who: 'api', deniedBy: ALLOW_IDS });
    await expect('/secret', 403, { deniedBy: 'default/no-secret' });
  });

  test('dot segments, encoded dots, merged slashes and unreserved escapes are normalised before the check', async () => {
    await expect('/admin/../admin', 403);
    await expect('/public/../admin/users', 403);
    await expect('/%2e%2e/admin', 403);
    await expect('/x/%2E%2E/admin/users', 403);
    await expect('/./admin', 403);
    await expect('//admin', 403);
    await expect('/admin//users', 403);
    await expect('/%61dmin', 403);
    await expect('http://api/x/../admin', 403);
    await expect('http://api/public/./a//b?q=1', 200, { appSees: '/public/a/b?q=1' });
    await expect('/public/./a//b/../c?q=/../admin', 200, { appSees: '/public/a/c?q=/../admin' });
    await expect('/hello/%7Euser', 200, { appSees: '/hello/~user' });
  });

  test('encoded slashes, backslashes, ";" parameters and fragments are refused with 400', async () => {
    await expect('/admin%2fusers', 400);
    await expect('/admin%2Fusers', 400);
    await expect('/public%5c..%5cadmin', 400);
    await expect('/public\\..\\admin', 400);
    await expect('/admin;jsessionid=1', 400);
    await expect('/admin#x', 400);
    await expect('/bad%zz', 400);
  });

  test('case: a rule with ignorePathCase catches /ADMIN; without it matching is case-sensitive', async () => {
    await expect('/ADMIN', 403);
    await expect('/Admin/Users', 403);
    await expect('/SECRET', 200);
  });

  test('x-forwarded-client-cert, x-http-method-override, x-original-url and a forged identity never change a decision', async () => {
    const forged = ['x-forwarded-client-cert: By=spiffe://mycel.local/ns/default/svc/api;URI=' + BATCH, 'x-mycel-peer-identity: ' + BATCH];
    await expect('/hello', 403, { method: 'DELETE', headers: ['x-http-method-override: GET', 'x-method-override: GET'], deniedBy: ALLOW_IDS });
    await expect('/hello', 403, { who: 'api', headers: forged, deniedBy: ALLOW_IDS });
    await expect('/admin', 403, { headers: ['x-original-url: /hello', 'x-rewrite-url: /hello'] });
    await expect('/hello', 200, { headers: ['x-original-url: /admin', ...forged] });
    const seen = app.seen[app.seen.length - 1]!;
    assert.equal(seen.headers['x-mycel-peer-identity'], WEB, 'the identity header is the verified one');
    assert.equal(seen.headers['x-forwarded-client-cert'], undefined, 'x-forwarded-client-cert is stripped');
  });

  test('HTTP/2 requests are normalised and authorized the same way', async () => {
    const session = http2.connect(`https://${mesh.api.inbound}`, { ...webTls, ALPNProtocols: ['h2'] });
    try {
      const get = (path: string) =>
        new Promise<{ status: number; error: string | undefined }>((resolve, reject) => {
          const req = session.request({ ':path': path, ':authority': 'api' });
          req.on('response', (h) => {
            req.resume();
            req.on('end', () => resolve({ status: Number(h[':status']), error: h['x-mycel-error'] as string | undefined }));
          });
          req.on('error', reject);
          req.end();
        });
      const before = app.seen.length;
      assert.deepEqual(await get('/admin/../admin'), { status: 403, error: 'denied-by default/no-admin' });
      assert.deepEqual(await get('/%2e%2e/ADMIN'), { status: 403, error: 'denied-by default/no-admin' });
      assert.deepEqual(await get('/admin%2F'), { status: 400, error: 'bad-request' });
      assert.equal(app.seen.length, before);
      assert.deepEqual(await get('/a//b/../hello'), { status: 200, error: undefined });
      assert.equal(app.seen[app.seen.length - 1]!.url, '/a/hello');
    } finally {
      session.destroy();
    }
  });

  test('through the whole mesh: web\'s app calls api via its sidecar (curl --path-as-is)', async (t) => {
    if (!(await requirePackage(t, 'curl', 'curl'))) return;
    const curl = async (path: string) => {
      const r = await run('curl', ['-s', '--path-as-is', '-o', '/dev/null', '-D', '-', `http://${mesh.apiBinding}${path}`]);
      return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(r.stdout)?.[1]), error: /^x-mycel-error: (.*)\r$/m.exec(r.stdout)?.[1] };
    };
    const before = app.seen.length;
    assert.deepEqual(await curl('/public/../admin'), { status: 403, error: 'denied-by default/no-admin' });
    assert.deepEqual(await curl('/%2e%2e/admin'), { status: 403, error: 'denied-by default/no-admin' });
    assert.equal(app.seen.length, before);
    assert.deepEqual(await curl('/hello'), { status: 200, error: undefined });
  });

  test('denials are counted in mycel_authz_denied_total by destination and source', async () => {
    assert.ok((await metric(mesh.api.admin, 'mycel_authz_denied_total', { destination_service: 'api', source_service: 'web' })) >= 10);
    assert.ok((await metric(mesh.api.admin, 'mycel_authz_denied_total', { destination_service: 'api', source_service: 'api' })) >= 1);
  });

  test('WebSocket-style upgrades are authorized on the normalised path', async () => {
    const before = app.seen.length;
    const res = await send('/x/../admin', { headers: ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='] });
    assert.equal(res.status, 403);
    assert.equal(res.headers['x-mycel-error'], 'denied-by default/no-admin');
    await sleep(50);
    assert.equal(app.seen.length, before);
  });
  test('TCP tunnels are checked by identity and port; a DENY rule ignores its HTTP-only fields there (it denies more)', async () => {
    const tunnel = async (who: string) => {
      const opts = await meshClientTls(mesh.dir, who, ['mycel-tcp']);
      const before = app.seen.length;
      const r = await rawExchange(targetOf(mesh.api.inbound, opts), 'GET /tunnelled HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n');
      await sleep(50);
      return { status: parseResponses(r.data)[0]?.status ?? 0, reached: app.seen.length - before };
    };
    // The DENY policy for /admin cannot look at a path in a tunnel, so it refuses every tunnel.
    assert.deepEqual(await tunnel('batch'), { status: 0, reached: 0 });
    const denied = await metric(mesh.api.admin, 'mycel_authz_denied_total', { destination_service: 'api', source_service: 'batch' });
    assert.ok(denied >= 1);

    // Without the DENY policies (a live config change): batch may tunnel (its rule names a port only), web may not
    // (its ALLOW rule names methods, which a tunnel does not have).
    const version = await configVersion();
    const withoutDenies = POLICIES.split('---\n').filter((d) => !d.includes('action: DENY')).join('---\n');
    await writeFile(mesh.apiConfig, mesh.meshYaml([]).replace(POLICIES, withoutDenies));
    for (let i = 0; i < 100 && (await configVersion()) === version; i++) await sleep(50);
    assert.notEqual(await configVersion(), version, 'api reloaded its config');
    assert.deepEqual(await tunnel('batch'), { status: 200, reached: 1 });
    assert.deepEqual(await tunnel('web'), { status: 0, reached: 0 });
    assert.deepEqual(await tunnel('api'), { status: 0, reached: 0 });
  });
});

describe('AuthorizationPolicy for gRPC', () => {
  let app: GrpcApp;
  let mesh: TwoSidecars;
  let client: EchoClientInstance;

  before(async () => {
    app = await startGrpcApp();
    const policy = `apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: unary-only }
spec:
  targetRef: { kind: Service, name: api }
  rules: [ { from: [ { source: { principals: [ ${WEB} ] } } ], to: [ { operation: { paths: [ /mycel.test.Echo/Unary ] } } ] } ]
`;
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'grpc', extraWebDocs: policy });
    client = echoClient(mesh.apiBinding);
  });
  after(async () => {
    client?.close();
    await mesh?.close();
    await app?.close();
  });

  test('an allowed method is served; another gets PERMISSION_DENIED (trailers-only) and never reaches the app', async () => {
    const ok = await unary(client, 'Unary', { message: 'hi' });
    assert.equal(ok.status.code, grpc.status.OK);
    const calls = app.calls.length;
    const denied = await unary(client, 'Fail', { message: 'no' });
    assert.equal(denied.status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(denied.status.metadata.get('x-mycel-error')[0], 'denied-by default/unary-only');
    assert.match(denied.status.details, /may not POST \/mycel\.test\.Echo\/Fail/);
    assert.equal(app.calls.length, calls, 'the app saw no call');
  });
});
