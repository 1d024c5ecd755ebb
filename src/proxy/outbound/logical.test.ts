// The route stage in process, over real sockets: an outbound listener with the discover -> logical -> balance ->
// endpoint stack, sending in plain HTTP to real test apps declared as external services (no mTLS needed here; the
// two-sidecar end-to-end tests cover that path).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import type { Server } from 'node:net';
import { startRawTcp } from '../../../test/helpers/apps.js';
import { parseResources } from '../../api/v1alpha1/load.js';
import { silentLogger } from '../../core/log.js';
import { compilePlan, type ProxyPlan } from '../config/plan.js';
import { createErrorResponder } from '../stack/error-response.js';
import type { HttpExchange } from '../stack/exchange.js';
import { ClientCache } from '../transport/client-cache.js';
import { HttpFrontend } from '../transport/http-frontend.js';
import { createOutboundServer, listen } from './accept.js';
import { balanceLayer } from './concrete.js';
import { discoverLayer } from './discover.js';
import { ForwardToEndpoint } from './endpoint.js';
import { Logical } from './logical.js';
import { redirectLocation } from './filters/redirect.js';
import { rewritePath } from './filters/url-rewrite.js';

interface Seen {
  url: string;
  method: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An app that records what reaches it and answers with its name; /slow never answers, /hang never reads. */
async function app(name: string): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', method: req.method ?? '', headers: req.headers, body });
      if (req.url === '/slow') return; // never answers: timeouts must end the exchange
      res.writeHead(200, { 'content-type': 'text/plain', 'x-app': name, 'x-drop-me': 'yes' });
      res.end(`${name} ${req.method} ${req.url}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A server that accepts connections and never answers (a stuck mirror target). */
const blackHole = () => startRawTcp(() => {});

function send(addr: { port: number }, o: { path: string; host?: string; method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: addr.port, method: o.method ?? 'GET', path: o.path, headers: { host: o.host ?? 'shop', ...o.headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('the route stage, in process over real sockets', () => {
  let v1: Awaited<ReturnType<typeof app>>;
  let v2: Awaited<ReturnType<typeof app>>;
  let shadow: Awaited<ReturnType<typeof app>>;
  let hole: Awaited<ReturnType<typeof blackHole>>;
  let deadPort: number;
  let server: Server;
  let frontend: HttpFrontend;
  let logical: Logical;
  let clients: ClientCache;
  let addr: { port: number };
  const done: HttpExchange[] = [];

  before(async () => {
    [v1, v2, shadow, hole] = await Promise.all([app('v1'), app('v2'), app('shadow'), blackHole()]);
    const closed = await blackHole();
    deadPort = closed.port;
    await closed.close();
    const yaml = `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: shop }
spec:
  external: true
  ports: [ { port: 80 } ]
  subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
  endpoints:
    - { address: 127.0.0.1, port: ${v1.port}, labels: { version: v1 } }
    - { address: 127.0.0.1, port: ${v2.port}, labels: { version: v2 } }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: shadow }
spec: { external: true, ports: [ { port: 80 } ], endpoints: [ { address: 127.0.0.1, port: ${shadow.port} } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: dead }
spec: { external: true, ports: [ { port: 80 } ], endpoints: [ { address: 127.0.0.1, port: ${deadPort} } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: hole }
spec: { external: true, ports: [ { port: 80 } ], endpoints: [ { address: 127.0.0.1, port: ${hole.port} } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: teapot }
spec: { abort: { httpStatus: 418 } }
---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: forever }
spec: { delay: { fixedDelay: 1h } }
---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: short }
spec: { delay: { fixedDelay: 20ms } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop-routes }
spec:
  parentRefs: [ { name: shop } ]
  rules:
  - name: canary
    matches: [ { headers: [ { name: x-canary, value: "yes" } ] } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: shop.v2 } ]
  - matches: [ { path: { value: /api } } ]
    filters:
    - type: URLRewrite
      urlRewrite: { hostname: internal.shop, path: { type: ReplacePrefixMatch, replacePrefixMatch: /v1/api } }
    - type: RequestHeaderModifier
      requestHeaderModifier: { set: [ { name: x-set, value: set } ], add: [ { name: x-add, value: added } ], remove: [ x-remove ] }
    - type: ResponseHeaderModifier
      responseHeaderModifier: { set: [ { name: x-route, value: api } ], remove: [ x-drop-me ] }
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: shop.v1 } ]
  - matches: [ { path: { value: /old } } ]
    filters: [ { type: RequestRedirect, requestRedirect: { hostname: new.example.com, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 } } ]
  - matches: [ { path: { value: /mirrored } } ]
    filters:
    - { type: RequestHeaderModifier, requestHeaderModifier: { set: [ { name: x-before-mirror, value: "1" } ] } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: shadow } } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: dead } } }
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: shop.v1 } ]
  - matches: [ { path: { value: /mirror-stuck } } ]
    filters: [ { type: RequestMirror, requestMirror: { backendRef: { name: hole } } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: shop.v1 } ]
  - matches: [ { path: { value: /teapot } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: teapot } } ]
  - matches: [ { path: { value: /held } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: forever } } ]
    timeouts: { request: 200ms }
  - matches: [ { path: { value: /delayed } } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: short } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: shop.v2 } ]
  - matches: [ { path: { type: Exact, value: /slow } } ]
    timeouts: { request: 5s, backendRequest: 200ms }
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: shop.v1 } ]
  - matches: [ { path: { value: /nowhere } } ]
    backendRefs: [ { name: gone } ]
  - matches: [ { path: { value: /split } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: shop.v1, weight: 1 }, { group: mycel.dev, kind: ServiceSubset, name: shop.v2, weight: 0 } ]
`;
    const parsed = parseResources(yaml, 'shop.yaml');
    assert.ok(parsed.ok, JSON.stringify(parsed));
    const plan: ProxyPlan = compilePlan(parsed.resources.map((r) => r.resource), 'web', 1);
    const plans = { current: plan };
    clients = new ClientCache({ identity: null, connectTimeoutMs: 2000, idleTimeoutMs: 60_000, poolIdleMs: 2000 });
    const balance = balanceLayer()(new ForwardToEndpoint(clients, plans));
    logical = new Logical(balance, silentLogger);
    const stack = discoverLayer(plans, null, 'web')(logical);
    frontend = new HttpFrontend('outbound', plan.mesh, { service: stack, observer: (ex) => done.push(ex), respondError: createErrorResponder(silentLogger, 'web') }, silentLogger);
    server = createOutboundServer(frontend, 1000, 5000);
    addr = await listen(server, { host: '127.0.0.1', port: 0 });
  });

  after(async () => {
    server?.close();
    frontend?.destroyAll();
    clients?.closeAll();
    await Promise.all([v1?.close(), v2?.close(), shadow?.close(), hole?.close()]);
  });

  test('a header match sends to the v2 subset; other requests that match no rule get 404 no-route', async () => {
    const canary = await send(addr, { path: '/anything', headers: { 'x-canary': 'yes' } });
    assert.equal(canary.status, 200);
    assert.equal(canary.headers['x-app'], 'v2');
    const last = done[done.length - 1]!;
    assert.deepEqual([last.route, last.routeRule, last.backend?.name], ['default/shop-routes', 0, 'shop.v2'], 'the decision is recorded for metrics');
    const none = await send(addr, { path: '/anything' });
    assert.equal(none.status, 404);
    assert.equal(none.headers['x-mycel-error'], 'no-route');
    assert.match(none.body, /no rule of the routes of shop:80 matches GET \/anything/);
  });

  test('rewrite (host and path prefix) and header filters both ways', async () => {
    const r = await send(addr, { path: '/api/items?q=1', headers: { 'x-remove': 'gone', 'x-set': 'client', 'x-add': 'client' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-app'], 'v1');
    assert.equal(r.headers['x-route'], 'api');
    assert.equal(r.headers['x-drop-me'], undefined);
    const seen = v1.seen[v1.seen.length - 1]!;
    assert.equal(seen.url, '/v1/api/items?q=1');
    assert.equal(seen.headers.host, 'internal.shop');
    assert.equal(seen.headers['x-set'], 'set');
    assert.equal(seen.headers['x-add'], 'client, added');
    assert.equal(seen.headers['x-remove'], undefined);
  });

  test('a redirect answers 3xx with the computed Location and sends nothing upstream', async () => {
    const before = v1.seen.length + v2.seen.length;
    const r = await send(addr, { path: '/old/page?x=1' });
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'http://new.example.com/new/page?x=1');
    assert.equal(v1.seen.length + v2.seen.length, before);
  });

  test('a mirror target gets a copy with the body; a dead mirror target does not affect the caller', async () => {
    const r = await send(addr, { method: 'POST', path: '/mirrored/x', body: 'payload-123' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-app'], 'v1');
    for (let i = 0; i < 200 && shadow.seen.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    const copy = shadow.seen[0]!;
    assert.deepEqual([copy.method, copy.url, copy.body, copy.headers['x-before-mirror']], ['POST', '/mirrored/x', 'payload-123', '1']);
    assert.equal(v1.seen[v1.seen.length - 1]!.body, 'payload-123', 'the real request keeps its body');
  });

  test('mirrors are bounded: past the in-flight cap, copies are dropped and callers are served', async () => {
    const droppedBefore = logical.mirrors.dropped;
    const results = await Promise.all(Array.from({ length: 80 }, (_, i) => send(addr, { path: `/mirror-stuck/${i}` })));
    assert.ok(results.every((r) => r.status === 200));
    assert.ok(logical.mirrors.dropped - droppedBefore >= 80 - 64, `dropped ${logical.mirrors.dropped - droppedBefore}`);
  });

  test('a Fault abort answers its status with x-mycel-error fault-injected', async () => {
    const r = await send(addr, { path: '/teapot' });
    assert.equal(r.status, 418);
    assert.equal(r.headers['x-mycel-error'], 'fault-injected');
  });

  test('a Fault delay holds the request (an hour-long delay ends at the route\'s request timeout); a short one lets it through', async () => {
    const seenBefore = v1.seen.length + v2.seen.length;
    const held = await send(addr, { path: '/held' });
    assert.equal(held.status, 504);
    assert.equal(held.headers['x-mycel-error'], 'response-timeout');
    assert.equal(v1.seen.length + v2.seen.length, seenBefore, 'the delayed request never left');
    const delayed = await send(addr, { path: '/delayed' });
    assert.equal(delayed.status, 200);
    assert.equal(delayed.headers['x-app'], 'v2');
  });

  test('backendRequest timeout: 504 response-timeout when the backend does not answer', async () => {
    const r = await send(addr, { path: '/slow' });
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-mycel-error'], 'response-timeout');
    assert.match(r.body, /backendRequest timeout \(200 ms\)/);
  });

  test('a backend the proxy cannot resolve fails with 500 route-invalid; a weight-0 backend is never chosen', async () => {
    const r = await send(addr, { path: '/nowhere' });
    assert.equal(r.status, 500);
    assert.equal(r.headers['x-mycel-error'], 'route-invalid');
    for (let i = 0; i < 20; i++) assert.equal((await send(addr, { path: '/split' })).headers['x-app'], 'v1');
  });
});

test('rewritePath follows the Gateway API ReplacePrefixMatch table', () => {
  const rw = (matched: string, prefix: string) => ({ full: null, prefix: prefix.replace(/\/+$/, ''), matched: matched.replace(/\/+$/, '') });
  const table: Array<[string, string, string, string]> = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
    ['/strip-prefix/three', '/strip-prefix', '/', '/three'],
    ['/prefix/one/two', '/prefix/one', '/one', '/one/two'],
    ['/a/b?x=/a', '/a', '/c', '/c/b?x=/a'],
    ['/any/path', '/', '/root', '/root/any/path'],
  ];
  for (const [path, matched, prefix, want] of table) assert.equal(rewritePath(path, rw(matched, prefix)), want, `${path} ${matched} -> ${prefix}`);
  assert.equal(rewritePath('/full/one/two?q', { full: '/one', prefix: null, matched: '' }), '/one?q');
});

test('redirectLocation: scheme, host, port and path as the Gateway API conformance cases expect', () => {
  const r = (o: Partial<{ scheme: 'http' | 'https'; hostname: string; port: number; statusCode: number }>) => ({ scheme: o.scheme ?? null, hostname: o.hostname ?? null, port: o.port ?? null, statusCode: o.statusCode ?? 302, path: null });
  const cases: Array<[ReturnType<typeof r>, number, string]> = [
    [r({ hostname: 'example.org' }), 80, 'http://example.org/p'],
    [r({ hostname: 'example.org', port: 80 }), 80, 'http://example.org/p'],
    [r({ hostname: 'example.org' }), 8080, 'http://example.org:8080/p'],
    [r({ hostname: 'example.org', port: 80 }), 8080, 'http://example.org/p'],
    [r({ scheme: 'https', hostname: 'example.org' }), 80, 'https://example.org/p'],
    [r({ scheme: 'https', hostname: 'example.org' }), 8080, 'https://example.org/p'],
    [r({ scheme: 'https', hostname: 'example.org', port: 443 }), 80, 'https://example.org/p'],
    [r({ scheme: 'https', hostname: 'example.org', port: 8443 }), 80, 'https://example.org:8443/p'],
    [r({ scheme: 'http', port: 8080 }), 80, 'http://api:8080/p'],
    [r({}), 9000, 'http://api:9000/p'],
  ];
  for (const [spec, port, want] of cases) assert.equal(redirectLocation(spec, 'API:9000', '/p', port), want);
  assert.equal(redirectLocation({ ...r({}), path: { full: '/full-path-replacement', prefix: null, matched: '' } }, 'api', '/full/path/original', 80), 'http://api/full-path-replacement');
});
