// The service graph's model: nodes from resources, proxies and stats; measured edges with their health; edges the
// proxies' subscriptions imply before traffic; left-to-right columns, bounded on a cycle; the header's totals.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EdgeStats, Proxy, ServiceStats, Stats } from './api.js';
import { buildGraph, meshTotals } from './graph-model.js';

const golden = { p50Ms: 1, p95Ms: 2, p99Ms: 3 };
const svc = (service: string, rps: number, successRate: number | null): ServiceStats => ({ service, namespace: 'default', rps, successRate, requests: rps * 60, ...golden });
const edge = (source: string, destination: string, rps: number, successRate: number | null): EdgeStats => ({ source, destination, rps, successRate, requests: rps * 60, ...golden });
const stats = (services: ServiceStats[], edges: EdgeStats[]): Stats => ({ windowSeconds: 60, now: 0, services, routes: [], edges, timeline: [] });
const proxy = (service: string, subscriptions: string[], connected = true): Proxy => ({
  proxyId: `${service}-1`, service, namespace: 'default', address: null, endpoint: null, replica: 'r', connected, connectedAt: '', lastContact: '',
  subscriptions, sentVersion: 1, ackedVersion: 1, nack: null, state: 'ACK',
});
const demoServices = ['web', 'reviews', 'ratings', 'loadgen'].map((name) => ({ name, namespace: 'default' }));

test('measured edges carry their numbers and health; nodes their instances and columns', () => {
  const g = buildGraph({
    services: demoServices,
    proxies: [proxy('web', []), proxy('reviews', []), proxy('reviews', []), proxy('ratings', []), proxy('loadgen', []), proxy('web', [], false)],
    stats: stats([svc('web', 4, 1), svc('reviews', 4, 0.999), svc('ratings', 1, 0.97), svc('loadgen', 0, null)], [edge('loadgen', 'web', 4, 1), edge('web', 'reviews', 4, 0.999), edge('reviews', 'ratings', 1, 0.5)]),
  });
  assert.deepEqual(g.nodes.map((n) => [n.name, n.instances, n.health, n.depth]), [
    ['loadgen', 1, 'idle', 0],
    ['ratings', 1, 'warn', 3],
    ['reviews', 2, 'good', 2],
    ['web', 1, 'good', 1],
  ]);
  assert.deepEqual(g.edges.map((e) => [e.id, e.health, e.stats?.rps]), [
    ['loadgen->web', 'good', 4],
    ['reviews->ratings', 'bad', 1],
    ['web->reviews', 'good', 4],
  ]);
});

test('before any traffic, subscriptions draw who calls whom (unmeasured); callers from outside are their own node', () => {
  const g = buildGraph({ services: demoServices, proxies: [proxy('web', ['reviews', 'reviews.default.svc:80', 'nosuch']), proxy('reviews', ['ratings'])], stats: stats([], [edge('unknown', 'web', 1, 1)]) });
  assert.deepEqual(g.edges.map((e) => [e.id, e.stats === null]), [
    ['reviews->ratings', true],
    ['unknown->web', false],
    ['web->reviews', true],
  ]);
  assert.equal(g.nodes.find((n) => n.id === 'unknown')?.outside, true);
  assert.equal(g.nodes.find((n) => n.id === 'nosuch'), undefined, 'a subscription to no known service adds nothing');
});

test('a cycle does not loop: depths stay below the node count', () => {
  const g = buildGraph({ services: [], proxies: [], stats: stats([], [edge('a', 'b', 1, 1), edge('b', 'c', 1, 1), edge('c', 'a', 1, 1)]) });
  for (const n of g.nodes) assert.ok(n.depth < 3, `${n.id} at ${n.depth}`);
});

test('no stats: the graph still has the services, and the totals are absent', () => {
  const g = buildGraph({ services: demoServices, proxies: [], stats: null });
  assert.equal(g.nodes.length, 4);
  assert.equal(g.edges.length, 0);
  assert.equal(meshTotals(null), null);
});

test('the totals: served rps, success as the callers saw it, the worst p99', () => {
  const t = meshTotals(stats([svc('web', 4, 1), { ...svc('reviews', 2, 1), p99Ms: 40 }], [edge('web', 'reviews', 2, 1), edge('reviews', 'ratings', 2, 0.5)]));
  assert.deepEqual(t, { rps: 6, requests: 360, successRate: 0.75, p50Ms: null, p95Ms: null, p99Ms: 40 });
});
