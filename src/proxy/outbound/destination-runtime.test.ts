import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources } from '../../api/v1alpha1/load.js';
import { compilePlan, type ProxyPlan } from '../config/plan.js';
import type { DestinationRuntime, RuntimeDeps } from './destination-runtime.js';
import { Destinations } from './destinations.js';
import { affinitySetCookie, cookieValue } from './hash-key.js';

function plan(policy: string, endpoints = 4, version = 1): ProxyPlan {
  const eps = Array.from({ length: endpoints }, (_, i) => `{ address: 10.0.0.${i + 1}, port: 15006, labels: { version: v${(i % 2) + 1}, zone: ${i < 2 ? 'a' : 'b'} } }`).join(', ');
  const r = parseResources(`apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 80 } ]
  subsets: [ { name: v2, labels: { version: v2 } } ]
  endpoints: [ ${eps} ]
${policy ? `---\napiVersion: mycel.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: p }\nspec:\n  targetRef: { kind: Service, name: api }\n${policy}` : ''}`, 'x.yaml');
  assert.ok(r.ok, JSON.stringify(r));
  return compilePlan(r.resources.map((x) => x.resource), 'web', version);
}

function deps(localZone?: string): RuntimeDeps & { ejections: string[] } {
  const ejections: string[] = [];
  return {
    localZone,
    ejections,
    healthConnect: () => () => Promise.reject(new Error('no checks in this test')),
    onEject: (_rt, endpoint) => ejections.push(endpoint),
    onHealthChange: () => {},
  };
}

const runtimeOf = (p: ProxyPlan): DestinationRuntime => p.lookupHost('api')!.runtime!;

function picks(rt: DestinationRuntime, subset: string | null, n: number): Set<string> {
  const seen = new Set<string>();
  const pool = rt.poolFor(subset)!;
  for (let i = 0; i < n; i++) seen.add(pool.pick(undefined)!.endpoint.key);
  return seen;
}

test('the runtime of a service survives config pushes: same object, same breaker counts, ejections kept', () => {
  const d = deps();
  const dests = new Destinations(d);
  const p1 = plan('  loadBalancer: { type: RoundRobin }\n  outlierDetection: { consecutive5xx: 2, maxEjectionPercent: 50 }\n  connectionPool: { maxRequests: 5 }\n');
  dests.attach(p1);
  const rt = runtimeOf(p1);
  assert.equal(rt.breaker.requests.limit, 5);
  rt.breaker.requests.tryAcquire();
  rt.outliers!.report('10.0.0.1:15006', 503);
  rt.outliers!.report('10.0.0.1:15006', 503);
  assert.deepEqual(d.ejections, ['10.0.0.1:15006']);
  assert.ok(!picks(rt, null, 50).has('10.0.0.1:15006'), 'the ejected endpoint is not picked');

  const p2 = plan('  loadBalancer: { type: RoundRobin }\n  outlierDetection: { consecutive5xx: 2, maxEjectionPercent: 50 }\n  connectionPool: { maxRequests: 7 }\n', 4, 2);
  dests.attach(p2);
  assert.equal(runtimeOf(p2), rt);
  assert.equal(rt.breaker.requests.limit, 7);
  assert.equal(rt.breaker.requests.count, 1, 'requests in flight carry over');
  assert.ok(rt.outliers!.isEjected('10.0.0.1:15006'));
  assert.equal(picks(rt, null, 60).size, 3);
  const picked = rt.pool.pick(undefined)!.endpoint;
  assert.ok(p2.lookupHost('api')!.endpoints.includes(picked), 'the balancer holds the new endpoint objects');

  const gone = compilePlan([], 'web', 3);
  dests.attach(gone);
  dests.attach(p1);
  assert.notEqual(runtimeOf(p1), rt, 'a service that left the config starts over when it comes back');
});

test('subsets have their own pools over their endpoints, sharing the service\'s ejections', () => {
  const dests = new Destinations(deps());
  const p = plan('  loadBalancer: { type: RoundRobin }\n  outlierDetection: { consecutive5xx: 1, maxEjectionPercent: 50 }\n');
  dests.attach(p);
  const rt = runtimeOf(p);
  assert.deepEqual([...picks(rt, 'v2', 40)].sort(), ['10.0.0.2:15006', '10.0.0.4:15006']);
  assert.equal(rt.poolFor('v9'), undefined);
  rt.outliers!.report('10.0.0.2:15006', 0);
  assert.deepEqual([...picks(rt, 'v2', 40)], ['10.0.0.4:15006']);
});

test('a changed load balancer type replaces the balancer; locality keeps picks in the caller\'s zone', () => {
  const dests = new Destinations(deps('b'));
  const p1 = plan('');
  dests.attach(p1);
  const rt = runtimeOf(p1);
  const ewma = rt.pool.balancer;
  assert.equal(rt.pool.mode, 'local');
  for (const key of picks(rt, null, 40)) assert.ok(key === '10.0.0.3:15006' || key === '10.0.0.4:15006', key);
  dests.attach(plan('  loadBalancer: { type: RingHash, hashKey: { header: x-user } }\n  locality: { preferLocalZone: false }\n', 4, 2));
  assert.notEqual(rt.pool.balancer, ewma);
  assert.deepEqual(rt.pool.hashKey, { header: 'x-user' });
  assert.equal(picks(rt, null, 40).size, 4);
  const key = rt.pool.pick('user-1')!.endpoint.key;
  for (let i = 0; i < 10; i++) assert.equal(rt.pool.pick('user-1')!.endpoint.key, key);
});

test('cookie values are found among several Cookie fields; the affinity Set-Cookie carries ttl and path', () => {
  const h = ['accept', '*/*', 'cookie', 'a=1; sticky = s1 ;b=2', 'cookie', 'c=3'];
  assert.equal(cookieValue(h, 'sticky'), 's1');
  assert.equal(cookieValue(h, 'c'), '3');
  assert.equal(cookieValue(h, 'stick'), null);
  assert.equal(cookieValue(['cookie', 'novalue; x=1'], 'novalue'), null);
  assert.equal(affinitySetCookie({ name: 'sticky', ttlMs: 1500 }, 'v'), 'sticky=v; Max-Age=2; Path=/; HttpOnly');
});
