import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources, parseResourceValues, crossCheck, formatPath, formatProblem, parsePath } from './load.js';

const good = `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata:
  name: api
spec:
  ports:
    - port: 8080
      appProtocol: http
  endpoints:
    - address: 127.0.0.1
      port: 15006
---
apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  timeouts: { connect: 2s }
`;

test('valid documents parse with defaults applied', () => {
  const r = parseResources(good, 'good.yaml');
  assert.ok(r.ok);
  assert.equal(r.resources.length, 2);
  const svc = r.resources[0]!.resource;
  assert.equal(svc.kind, 'Service');
  assert.equal(svc.metadata.namespace, 'default');
  const mesh = r.resources[1]!.resource;
  assert.equal(mesh.kind, 'MeshConfig');
  if (mesh.kind === 'MeshConfig') {
    assert.equal(mesh.spec.timeouts.connect, '2s');
    assert.equal(mesh.spec.timeouts.drain, '30s');
    assert.equal(mesh.spec.limits.maxHeaderCount, 100);
  }
  assert.deepEqual(r.resources[1]!.source, { file: 'good.yaml', line: 13, column: 1 });
});

test('a bad field is reported at its own line and column with its path', () => {
  const bad = good.replace('port: 15006', 'port: "15006"');
  const r = parseResources(bad, 'bad.yaml');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.problems.length, 1);
  const p = r.problems[0]!;
  assert.equal(p.path, 'spec.endpoints[0].port');
  assert.equal(p.line, 11);
  assert.equal(p.column, 13);
  assert.match(formatProblem(p), /^bad\.yaml:11:13 spec\.endpoints\[0\]\.port: expected a number$/);
});

test('an unknown field is reported at the key itself', () => {
  const r = parseResources(good.replace('appProtocol: http', 'appProtocl: http'), 'typo.yaml');
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.problems[0]!.path, 'spec.ports[0].appProtocl');
  assert.equal(r.problems[0]!.message, 'unknown field "appProtocl"');
  assert.deepEqual([r.problems[0]!.line, r.problems[0]!.column], [8, 7]);
});

test('YAML syntax errors and unknown kinds are rejected with positions', () => {
  const syntax = parseResources('kind: Service\nspec: [1, 2\n', 's.yaml');
  assert.equal(syntax.ok, false);
  if (!syntax.ok) assert.match(syntax.problems[0]!.message, /^YAML syntax/);
  const unknown = parseResources('apiVersion: x\nkind: Frobnicator\n', 'u.yaml');
  assert.equal(unknown.ok, false);
  if (!unknown.ok) assert.deepEqual([unknown.problems[0]!.line, unknown.problems[0]!.column, unknown.problems[0]!.path], [2, 7, 'kind']);
  const wrongVersion = parseResources('apiVersion: x\nkind: TrafficPolicy\n', 'p.yaml');
  assert.equal(wrongVersion.ok, false);
  if (!wrongVersion.ok) assert.equal(formatProblem(wrongVersion.problems[0]!), 'p.yaml:1:13 apiVersion: expected apiVersion mycel.dev/v1alpha1');
  const dupKeys = parseResources('kind: Service\nkind: Service\n', 'd.yaml');
  assert.equal(dupKeys.ok, false);
});

test('cross-checks find duplicate names and a second MeshConfig', () => {
  const a = parseResources(good, 'a.yaml');
  const b = parseResources(good, 'b.yaml');
  assert.ok(a.ok && b.ok);
  const problems = crossCheck([...a.resources, ...b.resources]);
  assert.equal(problems.length, 3);
  assert.match(problems[0]!.message, /duplicate Service "default\/api", first defined at a\.yaml:1/);
  assert.deepEqual([problems[0]!.file, problems[0]!.line, problems[0]!.column], ['b.yaml', 4, 9], 'at the duplicate name itself');
  assert.match(problems[2]!.message, /a second MeshConfig/);
});

test('empty files and empty documents are a valid empty set', () => {
  const r = parseResources('', 'empty.yaml');
  assert.ok(r.ok);
  assert.equal(r.resources.length, 0);
  const r2 = parseResources('---\n---\n', 'empty2.yaml');
  assert.ok(r2.ok);
});

test('locate finds a field of a loaded document, or the deepest part of its path that exists', () => {
  const r = parseResources(good, 'good.yaml');
  assert.ok(r.ok);
  const [svc, mesh] = r.resources as [(typeof r.resources)[0], (typeof r.resources)[0]];
  assert.deepEqual(svc.locate(['spec', 'endpoints', 0, 'port']), { file: 'good.yaml', line: 11, column: 13 });
  assert.deepEqual(svc.locate(['spec', 'ports', 0]), { file: 'good.yaml', line: 7, column: 7 });
  assert.deepEqual(svc.locate(['spec', 'ports', 5, 'port']), { file: 'good.yaml', line: 7, column: 5 }, 'no 6th port: the list');
  assert.deepEqual(mesh.locate(['spec', 'timeouts', 'drain']), { file: 'good.yaml', line: 17, column: 13 }, 'a defaulted field: its mapping');
  assert.deepEqual(mesh.locate([]), mesh.source);
});

test('a missing required field is named, at the mapping that lacks it', () => {
  const r = parseResources('apiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { namespace: x }\nspec: { ports: [{ port: 1 }] }\n', 'm.yaml');
  assert.equal(r.ok, false);
  if (!r.ok) assert.deepEqual(r.problems.map(formatProblem), ['m.yaml:3:11 metadata.name: missing field "name"']);
});

test('parseResourceValues validates JSON values like documents, reporting origin#index and the field path', () => {
  const svc = { apiVersion: 'mycel.dev/v1alpha1', kind: 'Service', metadata: { name: 'api' }, spec: { ports: [{ port: 8080 }] } };
  const ok = parseResourceValues([svc, { apiVersion: 'mycel.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name: 'mesh' } }], 'apply');
  assert.ok(ok.ok);
  assert.deepEqual(ok.resources[0]!.resource.metadata, { name: 'api', namespace: 'default' });
  assert.deepEqual(ok.resources[1]!.resource.spec, { mtls: { mode: 'STRICT' } });
  assert.deepEqual(ok.resources[1]!.source, { file: 'apply#1', line: 0, column: 0 });
  assert.deepEqual(ok.resources[0]!.locate(['spec', 'ports', 0]), { file: 'apply#0', line: 0, column: 0 });
  assert.equal(svc.metadata.name, 'api', 'the input is not modified');
  assert.equal('namespace' in svc.metadata, false);

  const bad = parseResourceValues([svc, { ...svc, spec: { ports: [{ port: 70000 }], extra: 1 } }, 'text', { kind: 'Service' }, { kind: 'Nope' }, null], 'apply');
  assert.equal(bad.ok, false);
  if (bad.ok) return;
  assert.deepEqual(bad.problems.map(formatProblem), [
    'apply#1 spec.ports[0].port: expected a port number <= 65535',
    'apply#1 spec.extra: unknown field "extra"',
    'apply#2: expected a resource: a mapping with apiVersion, kind, metadata and spec',
    'apply#3 apiVersion: missing field "apiVersion"',
    'apply#3 metadata: missing field "metadata"',
    'apply#3 spec: missing field "spec"',
    'apply#4 kind: unknown kind "Nope", expected one of Service, MeshConfig, HTTPRoute, GRPCRoute, TCPRoute, Fault, LocalRateLimit, TrafficPolicy, PeerAuthentication, AuthorizationPolicy',
    'apply#5: expected a resource: a mapping with apiVersion, kind, metadata and spec',
  ]);
});

test('parseResourceValues and parseResources agree on the same document', () => {
  const yaml = 'apiVersion: mycel.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: p }\nspec:\n  targetRef: { kind: Service, name: api }\n  retry: { attempts: 1 }\n';
  const fromYaml = parseResources(yaml, 'p.yaml');
  const fromJson = parseResourceValues([{ apiVersion: 'mycel.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'p' }, spec: { targetRef: { kind: 'Service', name: 'api' }, retry: { attempts: 1 } } }], 'api');
  assert.ok(fromYaml.ok && fromJson.ok);
  assert.deepEqual(fromJson.resources[0]!.resource, fromYaml.resources[0]!.resource);
});

test('parsePath reads back what formatPath writes', () => {
  const path = ['spec', 'rules', 0, 'backendRefs', 12, 'weight'];
  assert.equal(formatPath(path), 'spec.rules[0].backendRefs[12].weight');
  assert.deepEqual(parsePath(formatPath(path)), path);
  assert.deepEqual(parsePath(''), []);
});
