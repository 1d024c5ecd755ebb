// Config in force for a service: its routes (matches, filters, weighted backends as shares) and the policies that
// target it, from the demo's own resource shapes; other services' and namespaces' resources stay out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from './api.js';
import { configFor } from './resources-summary.js';

const route = (name: string, service: string, rules: unknown[], namespace = 'default'): Resource => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace }, spec: { parentRefs: [{ kind: 'Service', name: service }], rules },
});

test('routes and policies of one service, each in a line', () => {
  const resources: Resource[] = [
    route('reviews-canary', 'reviews', [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'reviews.v1', weight: 90 }, { name: 'reviews.v2', weight: 10 }] }]),
    route('reviews-testers', 'reviews', [{ matches: [{ headers: [{ name: 'x-user', value: 'tester' }] }], backendRefs: [{ name: 'reviews.v2', weight: 1 }] }]),
    route('ratings', 'ratings', [{ filters: [{ type: 'ExtensionRef', extensionRef: { kind: 'Fault', name: 'ratings-flaky' } }] }]),
    route('reviews-elsewhere', 'reviews', [{}], 'shop'),
    { apiVersion: 'mycel.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'reviews' }, spec: { targetRef: { kind: 'Service', name: 'reviews' }, timeout: '3s', retry: { attempts: 2 } } },
    { apiVersion: 'mycel.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name: 'mesh' }, spec: { mode: 'STRICT' } },
    { apiVersion: 'mycel.dev/v1alpha1', kind: 'Service', metadata: { name: 'reviews' }, spec: {} },
  ];
  const c = configFor(resources, 'default', 'reviews');
  assert.deepEqual(c.routes, [
    { kind: 'HTTPRoute', name: 'reviews-canary', lines: ['every request: → reviews.v1 90% / reviews.v2 10%'] },
    { kind: 'HTTPRoute', name: 'reviews-testers', lines: ['when header x-user: tester: → reviews.v2'] },
  ]);
  assert.deepEqual(c.policies, [
    { kind: 'TrafficPolicy', name: 'reviews', lines: ['timeout: 3s', 'retry: attempts 2'] },
    { kind: 'PeerAuthentication', name: 'mesh (mesh-wide)', lines: ['mode: STRICT'] },
  ]);
  assert.deepEqual(configFor(resources, 'default', 'ratings').routes, [{ kind: 'HTTPRoute', name: 'ratings', lines: ['every request: Fault ratings-flaky'] }]);
});
