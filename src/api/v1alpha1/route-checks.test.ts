import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossCheck, formatProblem, parseResources, type LoadedResource } from './load.js';

const services = `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: reviews }
spec:
  ports: [ { port: 9080, name: http }, { port: 9090, name: grpc } ]
  subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ratings }
spec:
  ports: [ { port: 80 } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Fault
metadata: { name: slow }
spec:
  delay: { fixedDelay: 1s }
`;

function load(text: string, file: string): LoadedResource[] {
  const r = parseResources(text, file);
  assert.ok(r.ok, JSON.stringify(r));
  return r.resources;
}

function check(routes: string): string[] {
  return crossCheck([...load(services, 'services.yaml'), ...load(routes, 'routes.yaml')]).map(formatProblem);
}

const http = (name: string, body: string, meta = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}${meta} }
spec:
${body}`;

test('a valid set of routes has no problems', () => {
  assert.deepEqual(
    check(http('split', `  parentRefs: [ { name: reviews, port: 9080 } ]
  rules:
  - matches: [ { headers: [ { name: x-canary, value: "1" } ] } ]
    filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: slow } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: reviews.v2 } ]
  - filters: [ { type: RequestMirror, requestMirror: { backendRef: { name: ratings } } } ]
    backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: reviews.v1, weight: 90 }, { name: reviews, port: 9080, weight: 10 } ]
`)),
    [],
  );
});

// Each case: routes and the exact problems (file:line:column field: message).
const cases: Array<[string, string, string[]]> = [
  [
    'a backendRef to an unknown service',
    http('r', `  parentRefs: [ { name: reviews } ]
  rules: [ { backendRefs: [ { name: reviewz } ] } ]
`),
    ['routes.yaml:6:37 spec.rules[0].backendRefs[0].name: unknown service "default/reviewz": no Service of that name is defined'],
  ],
  [
    'a backendRef to an unknown subset',
    http('r', `  parentRefs: [ { name: reviews } ]
  rules: [ { backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: reviews.v3 } ] } ]
`),
    ['routes.yaml:6:76 spec.rules[0].backendRefs[0].name: service "default/reviews" has no subset "v3" (its subsets: v1, v2)'],
  ],
  [
    'a subset of a service that declares none',
    http('r', `  parentRefs: [ { name: reviews } ]
  rules: [ { backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: ratings.v1 } ] } ]
`),
    ['routes.yaml:6:76 spec.rules[0].backendRefs[0].name: service "default/ratings" has no subset "v1" (it declares no spec.subsets)'],
  ],
  [
    'a backendRef to a port the service does not have',
    http('r', `  parentRefs: [ { name: reviews } ]
  rules: [ { backendRefs: [ { name: ratings, port: 8080 } ] } ]
`),
    ['routes.yaml:6:52 spec.rules[0].backendRefs[0].port: service "default/ratings" has no port 8080 (its ports: 80)'],
  ],
  [
    'weights of a rule adding up to zero',
    http('r', `  parentRefs: [ { name: reviews } ]
  rules: [ { backendRefs: [ { name: ratings, weight: 0 }, { name: reviews, weight: 0 } ] } ]
`),
    ["routes.yaml:6:27 spec.rules[0].backendRefs: the weights of this rule's backendRefs add up to 0, so no request could be sent anywhere; give at least one backend a weight above 0"],
  ],
  [
    'a mirror to an unknown service and an unknown Fault',
    http('r', `  parentRefs: [ { name: reviews } ]
  rules:
  - filters:
    - { type: RequestMirror, requestMirror: { backendRef: { name: shadow } } }
    - { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: fast } }
`),
    [
      'routes.yaml:8:67 spec.rules[0].filters[0].requestMirror.backendRef.name: unknown service "default/shadow": no Service of that name is defined',
      'routes.yaml:9:82 spec.rules[0].filters[1].extensionRef.name: unknown Fault "default/fast": no Fault of that name is defined in the route\'s namespace',
    ],
  ],
  [
    'a LocalRateLimit that does not exist (the Fault of the same name does not stand in for it)',
    http('r', `  parentRefs: [ { name: reviews } ]
  rules:
  - filters:
    - { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: LocalRateLimit, name: slow } }
`),
    ['routes.yaml:8:91 spec.rules[0].filters[0].extensionRef.name: unknown LocalRateLimit "default/slow": no LocalRateLimit of that name is defined in the route\'s namespace'],
  ],
  [
    'an unknown parent, a parent port that does not exist, and a sectionName that is no port name',
    http('r', `  parentRefs: [ { name: nowhere }, { name: reviews, port: 1234 }, { name: reviews, sectionName: admin } ]
`),
    [
      'routes.yaml:5:25 spec.parentRefs[0].name: unknown service "default/nowhere": no Service of that name is defined',
      'routes.yaml:5:59 spec.parentRefs[1].port: service "default/reviews" has no port 1234',
      'routes.yaml:5:97 spec.parentRefs[2].sectionName: service "default/reviews" has no port named "admin"',
    ],
  ],
  [
    'a route without parentRefs',
    http('r', `  rules: [ {} ]
`),
    ['routes.yaml:5:3 spec: this HTTPRoute has no parentRefs, so it applies to no service; name the Service it routes for in spec.parentRefs'],
  ],
  [
    'two routes with identical matches on the same parent (header order and case do not matter)',
    http('a', `  parentRefs: [ { name: reviews } ]
  rules: [ { matches: [ { headers: [ { name: X-A, value: "1" }, { name: b, value: "2" } ] } ] } ]
`) + '\n---\n' + http('b', `  parentRefs: [ { name: reviews, port: 9080 } ]
  rules: [ { matches: [ { path: { value: /other } } ] }, { matches: [ { headers: [ { name: B, value: "2" }, { name: x-a, value: "1" } ] } ] } ]
`),
    ['routes.yaml:14:71 spec.rules[1].matches[0]: conflicts with HTTPRoute default/a (routes.yaml:6:25): both route default/reviews:9080 requests with identical matches, and that route takes precedence, so this one would never be used'],
  ],
  [
    'the older route wins a conflict whatever its name',
    http('a', `  parentRefs: [ { name: reviews, port: 9080 } ]
  rules: [ {} ]
`, ', creationTimestamp: "2024-02-01T00:00:00Z"') + '\n---\n' + http('b', `  parentRefs: [ { name: reviews, port: 9080 } ]
  rules: [ {} ]
`, ', creationTimestamp: "2024-01-01T00:00:00Z"'),
    ['routes.yaml:6:12 spec.rules[0].matches[0]: conflicts with HTTPRoute default/b (routes.yaml:14:12): both route default/reviews:9080 requests with identical matches, and that route takes precedence, so this one would never be used'],
  ],
  [
    'two TCPRoutes on the same parent port',
    `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: t1 }
spec:
  parentRefs: [ { name: ratings } ]
  rules: [ { backendRefs: [ { name: ratings } ] } ]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: t2 }
spec:
  parentRefs: [ { name: ratings, port: 80 } ]
  rules: [ { backendRefs: [ { name: reviews, port: 9090 } ] } ]
`,
    ['routes.yaml:12:17 spec.parentRefs[0]: conflicts with TCPRoute default/t1 (routes.yaml:5:17): both route default/ratings:80 connections, and that route takes precedence, so this one would never be used'],
  ],
];

for (const [what, routes, expected] of cases) {
  test(`cross-check: ${what}`, () => {
    assert.deepEqual(check(routes), expected);
  });
}

test('no conflict: different matches, different hostnames, different ports, or an HTTPRoute beside a GRPCRoute', () => {
  const routes = [
    http('a', `  parentRefs: [ { name: reviews, port: 9080 } ]
  rules: [ { matches: [ { path: { value: /a } } ] } ]`),
    http('b', `  parentRefs: [ { name: reviews, port: 9080 } ]
  rules: [ { matches: [ { path: { value: /a }, method: GET } ] } ]`),
    http('c', `  parentRefs: [ { name: reviews, port: 9080 } ]
  hostnames: [ reviews.example.com ]
  rules: [ { matches: [ { path: { value: /a } } ] } ]`),
    http('d', `  parentRefs: [ { name: reviews, sectionName: grpc } ]
  rules: [ { matches: [ { path: { value: /a } } ] } ]`),
    `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: a }
spec:
  parentRefs: [ { name: reviews, port: 9080 } ]
  rules: [ {} ]`,
  ];
  assert.deepEqual(check(routes.join('\n---\n')), []);
});

test('without source text (the control plane checks stored values) a problem points at the document', () => {
  const at = (file: string, line: number) => {
    const source = { file, line, column: 0 };
    return { source, locate: () => source };
  };
  const stored = load(services, 'services.yaml').map((r) => ({ resource: r.resource, ...at('(stored)', 0) }));
  const [route] = load(http('r', `  parentRefs: [ { name: reviews } ]\n  rules: [ { backendRefs: [ { name: gone } ] } ]\n`), 'x.yaml');
  const problems = crossCheck([...stored, { resource: route!.resource, ...at('#request', 3) }]);
  assert.deepEqual(problems.map((p) => [p.file, p.line, p.path]), [['#request', 3, 'spec.rules[0].backendRefs[0].name']]);
});

test('a partial set (mycel apply before the control plane checks it) does not report names it does not define', () => {
  const routes = load(http('r', `  parentRefs: [ { name: elsewhere } ]
  rules:
  - filters: [ { type: ExtensionRef, extensionRef: { group: mycel.dev, kind: Fault, name: stored } } ]
    backendRefs: [ { name: stored-svc, weight: 0 } ]
`), 'routes.yaml');
  assert.deepEqual(crossCheck(routes, { partial: true }).map(formatProblem), [
    "routes.yaml:8:18 spec.rules[0].backendRefs: the weights of this rule's backendRefs add up to 0, so no request could be sent anywhere; give at least one backend a weight above 0",
  ]);
  assert.equal(crossCheck(routes).length, 4, 'the whole set: parent, Fault and backend are unknown too');
});
