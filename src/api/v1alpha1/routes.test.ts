import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProblem, parseResources } from './load.js';
import { compareRouteAge, fullMatchRegex, gatewayDurationMs } from './routes.js';

function problemsOf(yaml: string): string[] {
  const r = parseResources(yaml, 'r.yaml');
  return r.ok ? [] : r.problems.map(formatProblem);
}

const route = (spec: string, kind = 'HTTPRoute', apiVersion = 'gateway.networking.k8s.io/v1') => `apiVersion: ${apiVersion}
kind: ${kind}
metadata: { name: r }
spec:
  parentRefs: [ { group: "", kind: Service, name: api } ]
${spec}`;

test('an HTTPRoute gets the Gateway API defaults: a PathPrefix "/" match, Exact header matches, weight 1, redirect 302', () => {
  const r = parseResources(
    route(`  rules:
  - matches: [ { headers: [ { name: X-Version, value: v2 } ] } ]
    backendRefs: [ { name: api } ]
  - filters: [ { type: RequestRedirect, requestRedirect: { hostname: example.org } } ]
  - {}`),
    'r.yaml',
  );
  assert.ok(r.ok, JSON.stringify(r));
  const res = r.resources[0]!.resource;
  assert.equal(res.kind, 'HTTPRoute');
  if (res.kind !== 'HTTPRoute') return;
  const [a, b, c] = res.spec.rules;
  assert.deepEqual(a!.matches, [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'X-Version', value: 'v2' }] }]);
  assert.deepEqual(a!.backendRefs, [{ group: '', kind: 'Service', name: 'api', weight: 1 }]);
  assert.equal(b!.filters?.[0]?.requestRedirect?.statusCode, 302);
  assert.deepEqual(c!.matches, [{ path: { type: 'PathPrefix', value: '/' } }]);
  assert.deepEqual(res.spec.parentRefs, [{ group: '', kind: 'Service', name: 'api' }]);
});

test('a route with no rules gets one rule that matches everything (Gateway API default)', () => {
  const r = parseResources(route('  hostnames: [ "*.example.com" ]'), 'r.yaml');
  assert.ok(r.ok);
  const res = r.resources[0]!.resource;
  assert.ok(res.kind === 'HTTPRoute' && res.spec.rules.length === 1 && res.spec.rules[0]!.matches[0]!.path.value === '/');
});

test('GRPCRoute, TCPRoute (v1alpha2 and v1) and Fault documents parse', () => {
  const docs = [
    route(`  rules:
  - matches: [ { method: { service: helloworld.Greeter, method: SayHello } }, { headers: [ { name: env, value: canary } ] } ]
    backendRefs: [ { name: api, port: 9090 } ]`, 'GRPCRoute'),
    route(`  rules: [ { backendRefs: [ { name: db, weight: 90 }, { name: db-next, weight: 10 } ] } ]`, 'TCPRoute', 'gateway.networking.k8s.io/v1alpha2'),
    route(`  rules: [ { backendRefs: [ { name: db } ] } ]`, 'TCPRoute', 'gateway.networking.k8s.io/v1').replace('name: r', 'name: r2'),
    `apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: flaky }
spec:
  delay: { fixedDelay: 100ms, percentage: 50 }
  abort: { grpcStatus: 14 }
`,
  ];
  const r = parseResources(docs.join('\n---\n'), 'r.yaml');
  assert.ok(r.ok, JSON.stringify(r));
  const fault = r.resources[3]!.resource;
  assert.ok(fault.kind === 'Fault' && fault.spec.abort?.percentage === 100 && fault.spec.delay?.percentage === 50);
  const grpc = r.resources[0]!.resource;
  assert.ok(grpc.kind === 'GRPCRoute' && grpc.spec.rules[0]!.matches![0]!.method!.type === 'Exact');
});

// Each invalid document with the exact problem it must produce (file:line:column field: message).
const invalid: Array<[string, string, string | string[]]> = [
  ['a Gateway parent', route('  rules: [ {} ]').replace('kind: Service, name: api', 'kind: Gateway, name: gw'), 'r.yaml:5:36 spec.parentRefs[0].kind: Mycel routes attach to Services: expected kind Service'],
  ['an Exact path that is not absolute', route('  rules: [ { matches: [ { path: { type: Exact, value: foo } } ] } ]'), 'r.yaml:6:55 spec.rules[0].matches[0].path.value: Exact path must be an absolute path and start with "/"'],
  ['a PathPrefix with "//"', route('  rules: [ { matches: [ { path: { value: /a//b } } ] } ]'), 'r.yaml:6:42 spec.rules[0].matches[0].path.value: PathPrefix path must not contain "//"'],
  ['a regular expression that does not compile', route('  rules: [ { matches: [ { path: { type: RegularExpression, value: "/(a" } } ] } ]'), 'r.yaml:6:67 spec.rules[0].matches[0].path.value: expected a valid regular expression: Invalid regular expression: //(a/: Unterminated group'],
  ['a header value with a line break', route('  rules: [ { matches: [ { headers: [ { name: a, value: "x\\r\\ny: z" } ] } ] } ]'), 'r.yaml:6:56 spec.rules[0].matches[0].headers[0].value: expected a header value without control characters (CR, LF, NUL)'],
  ['an unknown method', route('  rules: [ { matches: [ { method: FETCH } ] } ]'), 'r.yaml:6:35 spec.rules[0].matches[0].method: expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH'],
  ['a filter whose settings field does not match its type', route('  rules: [ { filters: [ { type: URLRewrite, requestRedirect: { hostname: a.b } } ] } ]'), ['r.yaml:6:33 spec.rules[0].filters[0].type: urlRewrite must be set for a URLRewrite filter', 'r.yaml:6:62 spec.rules[0].filters[0].requestRedirect: requestRedirect must not be set on a URLRewrite filter']],
  ['CORS (not supported by Mycel)', route('  rules: [ { filters: [ { type: CORS } ] } ]'), 'r.yaml:6:33 spec.rules[0].filters[0].type: expected one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, ExtensionRef'],
  ['a redirect together with a rewrite', route(`  rules:
  - filters:
    - { type: RequestRedirect, requestRedirect: { port: 8080 } }
    - { type: URLRewrite, urlRewrite: { hostname: a.b } }`), 'r.yaml:8:5 spec.rules[0].filters: a RequestRedirect and a URLRewrite filter cannot be used together'],
  ['a redirect with backendRefs', route(`  rules:
  - filters: [ { type: RequestRedirect, requestRedirect: { port: 8080 } } ]
    backendRefs: [ { name: api } ]`), 'r.yaml:7:16 spec.rules[0].filters[0]: a RequestRedirect filter must not be used together with backendRefs'],
  ['a repeated header modifier', route(`  rules:
  - filters:
    - { type: RequestHeaderModifier, requestHeaderModifier: { add: [ { name: a, value: b } ] } }
    - { type: RequestHeaderModifier, requestHeaderModifier: { add: [ { name: c, value: d } ] } }`), 'r.yaml:9:15 spec.rules[0].filters[1].type: RequestHeaderModifier filter cannot be repeated'],
  ['two actions on one header name', route('  rules: [ { filters: [ { type: RequestHeaderModifier, requestHeaderModifier: { set: [ { name: X-A, value: b } ], remove: [ x-a ] } } ] } ]'), 'r.yaml:6:125 spec.rules[0].filters[0].requestHeaderModifier.remove[0]: header "x-a" has more than one action; give each header name one of set, add, remove'],
  ['a header filter on a framing field', route('  rules: [ { filters: [ { type: ResponseHeaderModifier, responseHeaderModifier: { set: [ { name: Content-Length, value: "1" } ] } } ] } ]'), 'r.yaml:6:98 spec.rules[0].filters[0].responseHeaderModifier.set[0].name: header "Content-Length" belongs to the connection or the message framing and cannot be changed by a route'],
  ['a header filter on Host', route('  rules: [ { filters: [ { type: RequestHeaderModifier, requestHeaderModifier: { remove: [ host ] } } ] } ]'), 'r.yaml:6:91 spec.rules[0].filters[0].requestHeaderModifier.remove[0]: the Host header cannot be changed here; use a URLRewrite filter with hostname'],
  ['ReplacePrefixMatch without a single PathPrefix match', route(`  rules:
  - matches: [ { path: { type: Exact, value: /a } } ]
    filters: [ { type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } } ]`), 'r.yaml:8:16 spec.rules[0].filters[0]: ReplacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path'],
  ['a path modifier missing its value', route('  rules: [ { filters: [ { type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath } } } ] } ]'), 'r.yaml:6:73 spec.rules[0].filters[0].urlRewrite.path.type: replaceFullPath must be set when type is ReplaceFullPath'],
  ['a mirror with both percent and fraction', route('  rules: [ { filters: [ { type: RequestMirror, requestMirror: { backendRef: { name: api }, percent: 5, fraction: { numerator: 1 } } } ] } ]'), 'r.yaml:6:114 spec.rules[0].filters[0].requestMirror.fraction: only one of percent or fraction may be set'],
  ['an extensionRef to something else than a Fault or a LocalRateLimit', route('  rules: [ { filters: [ { type: ExtensionRef, extensionRef: { group: example.com, kind: Thing, name: x } } ] } ]'), "r.yaml:6:61 spec.rules[0].filters[0].extensionRef: Mycel's filter extensions: expected group mycel.dev, kind Fault or LocalRateLimit"],
  ['a subset reference in the wrong group', route('  rules: [ { backendRefs: [ { kind: ServiceSubset, name: api.v2 } ] } ]'), 'r.yaml:6:29 spec.rules[0].backendRefs[0].group: kind ServiceSubset is in group "mycel.dev"'],
  ['a subset reference without a subset', route('  rules: [ { backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: api } ] } ]'), 'r.yaml:6:76 spec.rules[0].backendRefs[0].name: expected <service>.<subset>, e.g. reviews.v2'],
  ['a weight out of range', route('  rules: [ { backendRefs: [ { name: api, weight: -1 } ] } ]'), 'r.yaml:6:50 spec.rules[0].backendRefs[0].weight: expected a weight >= 0'],
  ['a backend timeout longer than the request timeout', route('  rules: [ { timeouts: { request: 1s, backendRequest: 2s } } ]'), 'r.yaml:6:55 spec.rules[0].timeouts.backendRequest: backendRequest timeout cannot be longer than the request timeout'],
  ['a fractional Gateway duration', route('  rules: [ { timeouts: { request: 1.5s } } ]'), 'r.yaml:6:35 spec.rules[0].timeouts.request: expected a Gateway API duration such as "10s", "500ms" or "1m30s"'],
  ['two rules with one name', route('  rules: [ { name: a }, { name: a } ]'), 'r.yaml:6:33 spec.rules[1].name: rule name "a" must be unique within the route'],
  ['retry (experimental channel, not supported)', route('  rules: [ { retry: { attempts: 2 } } ]'), 'r.yaml:6:14 spec.rules[0].retry: unknown field "retry"'],
  ['a gRPC method match with neither service nor method', route('  rules: [ { matches: [ { method: { type: Exact } } ] } ]', 'GRPCRoute'), 'r.yaml:6:43 spec.rules[0].matches[0].method.type: one or both of service and method must be set'],
  ['a gRPC service name with a slash', route('  rules: [ { matches: [ { method: { service: a/b } } ] } ]', 'GRPCRoute'), 'r.yaml:6:46 spec.rules[0].matches[0].method.service: expected a gRPC service name such as helloworld.Greeter'],
  ['a redirect on a GRPCRoute', route('  rules: [ { filters: [ { type: RequestRedirect } ] } ]', 'GRPCRoute'), 'r.yaml:6:33 spec.rules[0].filters[0].type: expected one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef'],
  ['a TCPRoute with two rules', route('  rules: [ { backendRefs: [ { name: a } ] }, { backendRefs: [ { name: b } ] } ]', 'TCPRoute', 'gateway.networking.k8s.io/v1alpha2'), 'r.yaml:6:10 spec.rules: Mycel takes one rule per TCPRoute: TCP has nothing to match on, so a second rule could never be chosen'],
  ['a TCPRoute rule without backends', route('  rules: [ { backendRefs: [] } ]', 'TCPRoute', 'gateway.networking.k8s.io/v1alpha2'), 'r.yaml:6:27 spec.rules[0].backendRefs: a TCP rule needs at least one backendRef'],
  ['a Fault with both statuses', 'apiVersion: mycel.dev/v1alpha1\nkind: Fault\nmetadata: { name: f }\nspec:\n  abort: { httpStatus: 503, grpcStatus: 14 }\n', 'r.yaml:5:10 spec.abort: set exactly one of httpStatus and grpcStatus'],
  ['an empty Fault', 'apiVersion: mycel.dev/v1alpha1\nkind: Fault\nmetadata: { name: f }\nspec: {}\n', 'r.yaml:4:7 spec: a Fault needs a delay, an abort, or both'],
  ['a Fault percentage above 100', 'apiVersion: mycel.dev/v1alpha1\nkind: Fault\nmetadata: { name: f }\nspec:\n  delay: { fixedDelay: 1s, percentage: 150 }\n', 'r.yaml:5:40 spec.delay.percentage: expected a percentage <= 100'],
];

for (const [what, yaml, expected] of invalid) {
  test(`invalid: ${what}`, () => {
    assert.deepEqual(problemsOf(yaml), Array.isArray(expected) ? expected : [expected]);
  });
}

test('Service subsets: names unique, at least one label', () => {
  const svc = (subsets: string) => `apiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: api }\nspec:\n  ports: [ { port: 80 } ]\n  subsets: ${subsets}\n`;
  assert.deepEqual(problemsOf(svc('[ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]')), []);
  assert.deepEqual(problemsOf(svc('[ { name: v1, labels: { version: v1 } }, { name: v1, labels: { version: v2 } } ]')), ['r.yaml:6:61 spec.subsets[1].name: duplicate subset name "v1"']);
  assert.deepEqual(problemsOf(svc('[ { name: v1, labels: {} } ]')), ['r.yaml:6:34 spec.subsets[0].labels: a subset selects endpoints by at least one label']);
});

test('regular expressions match whole values; Gateway durations convert to milliseconds', () => {
  const re = fullMatchRegex('/users/[0-9]+')!;
  assert.equal(re.test('/users/42'), true);
  assert.equal(re.test('/users/42/orders'), false);
  assert.equal(re.test('/x/users/42'), false);
  assert.equal(fullMatchRegex('a|b')!.test('ab'), false, 'alternatives are grouped before anchoring');
  assert.equal(fullMatchRegex('(')!, undefined);
  assert.equal(gatewayDurationMs('1h30m'), 5_400_000);
  assert.equal(gatewayDurationMs('1s500ms'), 1500);
  assert.equal(gatewayDurationMs('0s'), 0);
});

test('route age: older creationTimestamp first, then namespace/name; a route without a timestamp counts as newest', () => {
  const r = (namespace: string, name: string, creationTimestamp?: string) => ({ namespace, name, creationTimestamp });
  const sorted = [r('b', 'x'), r('a', 'y'), r('z', 'z', '2024-01-02T00:00:00Z'), r('y', 'y', '2024-01-01T00:00:00Z'), r('a', 'x')].sort(compareRouteAge);
  assert.deepEqual(sorted.map((x) => `${x.namespace}/${x.name}`), ['y/y', 'z/z', 'a/x', 'a/y', 'b/x']);
});
