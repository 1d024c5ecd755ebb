import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvalidCases, onlyResource, type InvalidCase } from '../../../test/helpers/resource-cases.js';

/** A policy document whose spec starts with a targetRef on line 5; `body` starts on line 6. */
const policy = (kind: string, body: string) => `apiVersion: mycel.dev/v1alpha1
kind: ${kind}
metadata: { name: p }
spec:
  targetRef: { kind: Service, name: api }
${body}
`;
const tp = (body: string) => policy('TrafficPolicy', body);
const authz = (body: string) => policy('AuthorizationPolicy', body);

test('a TrafficPolicy gets the defaults an Istio or Linkerd user expects', () => {
  const r = onlyResource(tp(`  loadBalancer:
    type: RingHash
    hashKey: { cookie: { name: session, ttl: 1h } }
  outlierDetection: {}
  healthCheck: { http: {} }
  retry: {}
  rateLimit: { requestsPerUnit: 100, unit: second }`));
  assert.equal(r.kind, 'TrafficPolicy');
  if (r.kind !== 'TrafficPolicy') return;
  assert.deepEqual(r.spec, {
    targetRef: { kind: 'Service', name: 'api' },
    loadBalancer: { type: 'RingHash', hashKey: { cookie: { name: 'session', ttl: '1h' } }, minimumRingSize: 1024 },
    outlierDetection: { consecutive5xx: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionTime: '300s', maxEjectionPercent: 10, panicThreshold: 50 },
    healthCheck: { http: { path: '/', expectedStatuses: [200] }, interval: '10s', timeout: '1s', healthyThreshold: 2, unhealthyThreshold: 3 },
    retry: {
      attempts: 2,
      retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
      retriableStatusCodes: [503],
      retryNonIdempotent: false,
      budget: { ratio: 0.2, minRetriesPerSecond: 10, ttl: '10s' },
      backoff: { baseInterval: '25ms', maxInterval: '250ms' },
    },
    rateLimit: { requestsPerUnit: 100, unit: 'second', perSourceIdentity: false },
    locality: { preferLocalZone: true, failoverThresholdPercent: 70 },
  });
});

test('every load balancer type and hash key is accepted', () => {
  const lb = (yaml: string) => {
    const r = onlyResource(tp(`  loadBalancer: ${yaml}`));
    return r.kind === 'TrafficPolicy' ? r.spec.loadBalancer : undefined;
  };
  assert.deepEqual(lb('{ type: RoundRobin }'), { type: 'RoundRobin' });
  assert.deepEqual(lb('{ type: LeastRequest }'), { type: 'LeastRequest' });
  assert.deepEqual(lb('{ type: EWMA }'), { type: 'EWMA', decay: '10s' });
  assert.deepEqual(lb('{ type: RingHash, hashKey: { header: x-user }, minimumRingSize: 4096 }'), { type: 'RingHash', hashKey: { header: 'x-user' }, minimumRingSize: 4096 });
  assert.deepEqual(lb('{ type: Maglev, hashKey: { sourceIP: true } }'), { type: 'Maglev', hashKey: { sourceIP: true }, tableSize: 65537 });
});

test('invalid TrafficPolicies are reported at the field, with the reason', () => {
  const cases: InvalidCase[] = [
    { name: 'unknown balancer', yaml: tp('  loadBalancer: { type: Random }'), problems: ['f.yaml:6:25 spec.loadBalancer.type: expected type RoundRobin, LeastRequest, EWMA, RingHash or Maglev'] },
    { name: 'ring hash without a key', yaml: tp('  loadBalancer: { type: RingHash }'), problems: ['f.yaml:6:17 spec.loadBalancer.hashKey: missing field "hashKey"'] },
    { name: 'a hash key on round robin', yaml: tp('  loadBalancer: { type: RoundRobin, hashKey: { header: x } }'), problems: ['f.yaml:6:37 spec.loadBalancer.hashKey: unknown field "hashKey"'] },
    {
      name: 'two hash keys',
      yaml: tp('  loadBalancer:\n    type: RingHash\n    hashKey: { header: x-user, sourceIP: true }'),
      problems: ['f.yaml:8:42 spec.loadBalancer.hashKey.sourceIP: "sourceIP" cannot be combined with "header": expected exactly one of header, cookie, sourceIP'],
    },
    { name: 'no hash key', yaml: tp('  loadBalancer:\n    type: RingHash\n    hashKey: {}'), problems: ['f.yaml:8:14 spec.loadBalancer.hashKey: expected exactly one of header, cookie, sourceIP'] },
    { name: 'maglev table not prime', yaml: tp('  loadBalancer:\n    type: Maglev\n    hashKey: { sourceIP: true }\n    tableSize: 1000'), problems: ['f.yaml:9:16 spec.loadBalancer.tableSize: expected a prime number'] },
    { name: 'bad header name', yaml: tp('  loadBalancer:\n    type: RingHash\n    hashKey: { header: "bad header" }'), problems: ["f.yaml:8:24 spec.loadBalancer.hashKey.header: expected a header name (letters, digits and !#$%&'*+-.^_`|~)"] },
    { name: 'zero connections', yaml: tp('  connectionPool: { maxConnections: 0 }'), problems: ['f.yaml:6:37 spec.connectionPool.maxConnections: expected a limit >= 1'] },
    { name: 'ejection base over max', yaml: tp('  outlierDetection: { baseEjectionTime: 10m }'), problems: ['f.yaml:6:41 spec.outlierDetection.baseEjectionTime: expected at most maxEjectionTime (300s)'] },
    { name: 'panic threshold over 100', yaml: tp('  outlierDetection: { panicThreshold: 120 }'), problems: ['f.yaml:6:39 spec.outlierDetection.panicThreshold: expected a percentage <= 100'] },
    { name: 'health check of no kind', yaml: tp('  healthCheck: { interval: 5s }'), problems: ['f.yaml:6:16 spec.healthCheck: expected exactly one of http, grpc, tcp'] },
    { name: 'health check of two kinds', yaml: tp('  healthCheck: { http: {}, tcp: {} }'), problems: ['f.yaml:6:33 spec.healthCheck.tcp: "tcp" cannot be combined with "http": expected exactly one of http, grpc, tcp'] },
    { name: 'health timeout over interval', yaml: tp('  healthCheck: { tcp: {}, timeout: 10s, interval: 5s }'), problems: ['f.yaml:6:36 spec.healthCheck.timeout: expected at most interval (5s)'] },
    { name: 'relative health path', yaml: tp('  healthCheck: { http: { path: healthz } }'), problems: ['f.yaml:6:32 spec.healthCheck.http.path: expected a path starting with "/"'] },
    {
      name: 'unknown retry condition',
      yaml: tp('  retry:\n    retryOn: [5xx, timeout]'),
      problems: ['f.yaml:7:20 spec.retry.retryOn[1]: expected one of connect-failure, refused-stream, reset, 5xx, gateway-error, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable'],
    },
    { name: 'too many attempts', yaml: tp('  retry:\n    attempts: 11'), problems: ['f.yaml:7:15 spec.retry.attempts: expected a count <= 10'] },
    {
      name: 'budget ratio and ttl',
      yaml: tp('  retry:\n    budget: { ratio: 1.5, ttl: 0s }'),
      problems: ['f.yaml:7:22 spec.retry.budget.ratio: expected a ratio <= 1', 'f.yaml:7:32 spec.retry.budget.ttl: expected a duration above 0'],
    },
    { name: 'backoff base over max', yaml: tp('  retry:\n    backoff: { baseInterval: 1s }'), problems: ['f.yaml:7:30 spec.retry.backoff.baseInterval: expected at most maxInterval (250ms)'] },
    { name: 'status out of range', yaml: tp('  retry:\n    retriableStatusCodes: [700]'), problems: ['f.yaml:7:28 spec.retry.retriableStatusCodes[0]: expected an HTTP status <= 599'] },
    { name: 'timeout not a duration', yaml: tp('  timeout: 2 seconds'), problems: ['f.yaml:6:12 spec.timeout: expected a duration such as "250ms", "10s", "1m"'] },
    { name: 'rate limit without a rate', yaml: tp('  rateLimit: { burst: 10 }'), problems: ['f.yaml:6:14 spec.rateLimit: expected requestsPerUnit and unit, or tokens and fillInterval'] },
    { name: 'rate without unit', yaml: tp('  rateLimit: { requestsPerUnit: 10 }'), problems: ['f.yaml:6:33 spec.rateLimit.requestsPerUnit: requestsPerUnit and unit go together'] },
    {
      name: 'both rate forms',
      yaml: tp('  rateLimit: { requestsPerUnit: 10, unit: second, tokens: 5, fillInterval: 1s }'),
      problems: ['f.yaml:6:59 spec.rateLimit.tokens: expected either requestsPerUnit and unit, or tokens and fillInterval, not both'],
    },
    { name: 'unknown unit', yaml: tp('  rateLimit: { requestsPerUnit: 5, unit: day }'), problems: ['f.yaml:6:42 spec.rateLimit.unit: expected second, minute or hour'] },
    { name: 'negative threshold', yaml: tp('  locality: { failoverThresholdPercent: -1 }'), problems: ['f.yaml:6:41 spec.locality.failoverThresholdPercent: expected a percentage >= 0'] },
    { name: 'misspelt section', yaml: tp('  retries: {}'), problems: ['f.yaml:6:3 spec.retries: unknown field "retries"'] },
    { name: 'no target', yaml: 'apiVersion: mycel.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: p }\nspec: {}\n', problems: ['f.yaml:4:7 spec.targetRef: missing field "targetRef"'] },
    { name: 'no spec', yaml: 'apiVersion: mycel.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: p }\n', problems: ['f.yaml:1:1 spec: missing field "spec"'] },
    { name: 'target of another kind', yaml: tp('').replace('kind: Service', 'kind: Pod'), problems: ['f.yaml:5:22 spec.targetRef.kind: expected kind Service'] },
  ];
  assertInvalidCases(cases);
});

test('PeerAuthentication defaults to STRICT and may be mesh-wide', () => {
  const meshWide = onlyResource('apiVersion: mycel.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: { name: mesh }\n');
  assert.deepEqual(meshWide.spec, { mtls: { mode: 'STRICT' } });
  const one = onlyResource(policy('PeerAuthentication', '  mtls: { mode: PERMISSIVE }'));
  assert.deepEqual(one.spec, { targetRef: { kind: 'Service', name: 'api' }, mtls: { mode: 'PERMISSIVE' } });
  assertInvalidCases([
    { name: 'unknown mode', yaml: policy('PeerAuthentication', '  mtls: { mode: DISABLE }'), problems: ['f.yaml:6:17 spec.mtls.mode: expected STRICT or PERMISSIVE'] },
    { name: 'mode at the wrong level', yaml: policy('PeerAuthentication', '  mode: STRICT'), problems: ['f.yaml:6:3 spec.mode: unknown field "mode"'] },
  ]);
});

test('an AuthorizationPolicy defaults to ALLOW with no rules (which allows nothing)', () => {
  const r = onlyResource(authz(''));
  assert.deepEqual(r.spec, { targetRef: { kind: 'Service', name: 'api' }, action: 'ALLOW', rules: [] });
  const full = onlyResource(
    authz(`  action: DENY
  rules:
    - from:
        - source: { principals: ["spiffe://mycel.local/ns/default/svc/web", "*/svc/batch"], notPrincipals: ["spiffe://mycel.local/ns/test/*"] }
        - source: { namespaces: [ops], services: [admin, tools/cli] }
      to: [{ operation: { methods: [POST, DELETE], paths: ["/admin/*", "*.php", "/exact", "*"], ports: [8080] } }]
      when: [{ header: x-tenant, notValues: [acme] }]
    - {}`),
  );
  assert.equal(full.kind, 'AuthorizationPolicy');
  if (full.kind !== 'AuthorizationPolicy') return;
  assert.equal(full.spec.action, 'DENY');
  assert.equal(full.spec.rules.length, 2);
  assert.deepEqual(full.spec.rules[0]!.from![1], { source: { namespaces: ['ops'], services: ['admin', 'tools/cli'] } });
  assert.deepEqual(full.spec.rules[1], {});
});

test('invalid AuthorizationPolicies are reported at the field, with the reason', () => {
  assertInvalidCases([
    { name: 'unknown action', yaml: authz('  action: AUDIT'), problems: ['f.yaml:6:11 spec.action: expected ALLOW or DENY'] },
    { name: 'empty from', yaml: authz('  rules:\n    - from: []'), problems: ['f.yaml:7:13 spec.rules[0].from: expected a non-empty list; leave the field out to match any'] },
    { name: 'empty source', yaml: authz('  rules:\n    - from: [{ source: {} }]'), problems: ['f.yaml:7:24 spec.rules[0].from[0].source: expected at least one of principals, notPrincipals, namespaces, services'] },
    {
      name: 'principal that is not a SPIFFE ID',
      yaml: authz('  rules:\n    - from: [{ source: { principals: ["web"] } }]'),
      problems: ['f.yaml:7:39 spec.rules[0].from[0].source.principals[0]: expected a SPIFFE ID such as spiffe://mycel.local/ns/default/svc/web, with an optional "*" at its start or end'],
    },
    { name: 'service in capitals', yaml: authz('  rules:\n    - from: [{ source: { services: ["Web"] } }]'), problems: ['f.yaml:7:37 spec.rules[0].from[0].source.services[0]: expected a service name, or namespace/name'] },
    {
      name: 'lower-case method and a wildcard inside a path',
      yaml: authz('  rules:\n    - to: [{ operation: { methods: [get], paths: ["/a/*/b"] } }]'),
      problems: [
        'f.yaml:7:37 spec.rules[0].to[0].operation.methods[0]: expected an HTTP method in capitals, such as GET',
        'f.yaml:7:51 spec.rules[0].to[0].operation.paths[0]: expected a path: exact "/a/b", prefix "/a/*", suffix "*.json", or "*"',
      ],
    },
    { name: 'port 0', yaml: authz('  rules:\n    - to: [{ operation: { ports: [0] } }]'), problems: ['f.yaml:7:35 spec.rules[0].to[0].operation.ports[0]: expected a port number >= 1'] },
    { name: 'condition without values', yaml: authz('  rules:\n    - when: [{ header: x-a }]'), problems: ['f.yaml:7:14 spec.rules[0].when[0]: expected at least one of values, notValues'] },
    { name: 'condition without header', yaml: authz('  rules:\n    - when: [{ values: [a] }]'), problems: ['f.yaml:7:14 spec.rules[0].when[0].header: missing field "header"'] },
  ]);
});
