import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources } from '../../api/v1alpha1/load.js';
import { compilePlan } from './plan.js';
import { WeightedBackends, type CompiledRule, type RouteBackend } from './route-table.js';

function plan(yaml: string) {
  const r = parseResources(yaml, 'p.yaml');
  assert.ok(r.ok, JSON.stringify(r));
  return compilePlan(r.resources.map((x) => x.resource), 'web', 1);
}

const backend = (weight: number): RouteBackend => ({ target: null, invalid: null, weight, steps: [], responseModifiers: null });

test('a 90/10 split over 10,000 picks lands within 5 standard deviations of 9,000 / 1,000', () => {
  const heavy = backend(90);
  const light = backend(10);
  const w = new WeightedBackends([heavy, light]);
  const n = 10_000;
  let heavyCount = 0;
  for (let i = 0; i < n; i++) if (w.pick(Math.random()) === heavy) heavyCount++;
  // Binomial: mean n*p, standard deviation sqrt(n*p*(1-p)) = 30 for p = 0.9.
  const sigma = Math.sqrt(n * 0.9 * 0.1);
  assert.ok(Math.abs(heavyCount - n * 0.9) <= 5 * sigma, `heavy got ${heavyCount} of ${n}`);
});

test('weights: 0 is never picked, boundaries fall on the right side, all-zero picks nothing', () => {
  const a = backend(1);
  const zero = backend(0);
  const b = backend(3);
  const w = new WeightedBackends([a, zero, b]);
  assert.equal(w.pick(0), a);
  assert.equal(w.pick(0.2499), a);
  assert.equal(w.pick(0.25), b);
  assert.equal(w.pick(0.9999), b);
  for (let i = 0; i < 1000; i++) assert.notEqual(w.pick(Math.random()), zero);
  assert.equal(new WeightedBackends([backend(0), backend(0)]).pick(0.5), null);
});

const services = `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: reviews }
spec:
  ports: [ { port: 9080 }, { port: 9090, name: admin } ]
  subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2, track: stable } } ]
  endpoints:
    - { address: 10.0.0.1, port: 15006, labels: { version: v1 } }
    - { address: 10.0.0.2, port: 15006, labels: { version: v2, track: stable } }
    - { address: 10.0.0.3, port: 15006, labels: { version: v2 } }
    - { address: 10.0.0.4, port: 15006, labels: { version: v2, track: stable, zone: a } }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: other }
spec: { ports: [ { port: 80 } ], endpoints: [ { address: 10.0.1.1, port: 15006 } ] }
`;

function ruleOf(p: ReturnType<typeof plan>, port: number, path = '/'): CompiledRule {
  const c = p.lookupHost('reviews')!.routes.get(port)!.candidates!.matchHttp('GET', 'reviews', path, []);
  assert.ok(c, `a rule matches ${path}`);
  return c.rule;
}

test('subset backends get the endpoints whose labels include all of the subset\'s; ports default to the parent port', () => {
  const p = plan(services + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split }
spec:
  parentRefs: [ { name: reviews } ]
  rules:
  - matches: [ { path: { value: /v2 } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: reviews.v2 } ]
  - matches: [ { path: { value: /other } } ]
    backendRefs: [ { name: other } ]
  - backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: reviews.v1, port: 9090 } ]
`);
  const v2 = ruleOf(p, 9080, '/v2').backends.backends[0]!.target!;
  assert.equal(v2.name, 'reviews.v2');
  assert.equal(v2.port.port, 9080, 'no port named: the port the request came on');
  assert.deepEqual(v2.endpoints.endpoints.map((e) => e.address), ['10.0.0.2', '10.0.0.4']);
  const picks = [v2.pickEndpoint()!.address, v2.pickEndpoint()!.address, v2.pickEndpoint()!.address];
  assert.deepEqual(picks, ['10.0.0.2', '10.0.0.4', '10.0.0.2']);
  const onAdmin = ruleOf(p, 9090, '/v2').backends.backends[0]!.target!;
  assert.equal(onAdmin.port.port, 9090);
  assert.equal(onAdmin.endpoints, v2.endpoints, 'one endpoint rotation per subset, whatever the port');
  const other = ruleOf(p, 9080, '/other').backends.backends[0]!.target!;
  assert.equal(other.port.port, 80, 'the backend lacks the parent port: its only port');
  const v1 = ruleOf(p, 9080, '/x').backends.backends[0]!.target!;
  assert.deepEqual([v1.port.port, v1.endpoints.endpoints.map((e) => e.address)], [9090, ['10.0.0.1']]);
});

test('what a proxy cannot resolve (a control plane view may lack it) compiles into a failing backend or step, never into a skip', () => {
  const p = plan(services + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [ { name: reviews, port: 9080 } ]
  rules:
  - matches: [ { path: { value: /a } } ]
    backendRefs: [ { name: gone }, { group: mycel.dev, kind: ServiceSubset, name: reviews.v9 }, { name: other, port: 81 } ]
  - matches: [ { path: { value: /b } } ]
    filters:
    - { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: missing } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: gone }, percent: 50 } }
  - matches: [ { path: { value: /c } } ]
    filters:
    - { type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new/ } } }
    - { type: ResponseHeaderModifier, responseHeaderModifier: { set: [ { name: x-r, value: "1" } ] } }
    timeouts: { request: 2s, backendRequest: 500ms }
`);
  const a = ruleOf(p, 9080, '/a').backends.backends;
  assert.deepEqual(a.map((b) => [b.target, b.invalid]), [
    [null, 'backend service default/gone is not known to this proxy'],
    [null, 'service default/reviews has no subset "v9"'],
    [null, 'backend service default/other has no port 81'],
  ]);
  const b = ruleOf(p, 9080, '/b');
  assert.deepEqual(b.steps[0], { type: 'invalid', reason: 'Fault default/missing is not known to this proxy' });
  assert.deepEqual(b.steps[1], { type: 'mirror', target: null, numerator: 50, denominator: 100 });
  assert.equal(b.backends.backends[0]!.target!.name, 'reviews', 'no backendRefs: the parent service itself');
  const c = ruleOf(p, 9080, '/c/x');
  assert.deepEqual(c.steps[0], { type: 'rewrite', hostname: null, path: { full: null, prefix: '/new', matched: '/c' } });
  assert.equal(c.steps.length, 1, 'a response filter is no request step');
  assert.equal(c.backends.backends[0]!.responseModifiers?.length, 1);
  assert.deepEqual([c.requestTimeoutMs, c.backendTimeoutMs, c.route, c.ruleIndex], [2000, 500, 'default/r', 2]);
});

test('TCPRoute: the oldest route of a port gives its weighted backends', () => {
  const p = plan(services + `---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: b-tcp }
spec:
  parentRefs: [ { name: reviews, sectionName: admin } ]
  rules: [ { backendRefs: [ { name: other, weight: 3 }, { group: mycel.dev, kind: ServiceSubset, name: reviews.v1, weight: 1 } ] } ]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: c-tcp, creationTimestamp: "2020-01-01T00:00:00Z" }
spec:
  parentRefs: [ { name: reviews, port: 9090 } ]
  rules: [ { backendRefs: [ { name: reviews } ] } ]
`);
  const routes = p.lookupHost('reviews')!.routes;
  assert.equal(routes.get(9080), undefined);
  const tcp = routes.get(9090)!.tcp!;
  assert.equal(tcp.route, 'default/c-tcp');
  assert.equal(routes.get(9090)!.candidates, null);
});
