import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossCheck, formatProblem, parseResources, parseResourceValues, type LoadedResource } from './load.js';

const services = `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec: { ports: [{ port: 8080 }] }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: db, namespace: data }
spec: { ports: [{ port: 5432, appProtocol: tcp }] }
`;

/** A policy document naming `target` (mesh-wide without): "---", then apiVersion, kind, metadata, spec with the targetRef. */
const policy = (kind: string, name: string, target?: string, namespace = 'default') => `---
apiVersion: mycel.dev/v1alpha1
kind: ${kind}
metadata: { name: ${name}, namespace: ${namespace} }
spec: {${target ? ` targetRef: { kind: Service, name: ${target} }` : ''} }
`;

function load(yaml: string): LoadedResource[] {
  const r = parseResources(yaml, 'set.yaml');
  assert.ok(r.ok, r.ok ? '' : r.problems.map(formatProblem).join('\n'));
  return r.resources;
}

test('policies that name existing services, one TrafficPolicy per service, pass', () => {
  const set = load(
    services +
      policy('TrafficPolicy', 'api', 'api') +
      policy('TrafficPolicy', 'db', 'db', 'data') +
      policy('PeerAuthentication', 'mesh') +
      policy('PeerAuthentication', 'api', 'api') +
      policy('AuthorizationPolicy', 'a1', 'api') +
      policy('AuthorizationPolicy', 'a2', 'api'),
  );
  assert.deepEqual(crossCheck(set), []);
});

test('a policy naming an unknown service is reported at its targetRef name', () => {
  const set = load(
    services +
      policy('TrafficPolicy', 'web', 'web') + // line 11
      policy('AuthorizationPolicy', 'db', 'db') + // line 16: db exists, but in namespace data
      policy('PeerAuthentication', 'x', 'cache', 'data'), // line 21
  );
  assert.deepEqual(crossCheck(set).map(formatProblem), [
    'set.yaml:14:43 spec.targetRef.name: unknown service "default/web": no Service of that name in namespace default',
    'set.yaml:19:43 spec.targetRef.name: unknown service "default/db": no Service of that name in namespace default',
    'set.yaml:24:43 spec.targetRef.name: unknown service "data/cache": no Service of that name in namespace data',
  ]);
});

test('two TrafficPolicies for one service, or two mesh-wide PeerAuthentications, conflict', () => {
  const set = load(
    services +
      policy('TrafficPolicy', 'first', 'api') + // line 11
      policy('TrafficPolicy', 'second', 'api') + // line 16
      policy('PeerAuthentication', 'mesh-a') + // line 21
      policy('PeerAuthentication', 'mesh-b', undefined, 'data'), // line 26
  );
  assert.deepEqual(crossCheck(set).map(formatProblem), [
    'set.yaml:19:43 spec.targetRef.name: a second TrafficPolicy for service "default/api"; the first is "default/first" at set.yaml:11',
    'set.yaml:29:7 spec: a second mesh-wide PeerAuthentication (no targetRef); the first is "default/mesh-a" at set.yaml:21',
  ]);
});

test('problems found in JSON values point at origin#index', () => {
  const r = parseResourceValues([{ apiVersion: 'mycel.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'p' }, spec: { targetRef: { kind: 'Service', name: 'api' } } }], 'apply');
  assert.ok(r.ok);
  assert.deepEqual(crossCheck(r.resources).map(formatProblem), ['apply#0 spec.targetRef.name: unknown service "default/api": no Service of that name in namespace default']);
});
