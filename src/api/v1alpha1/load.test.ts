import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources, crossCheck, formatProblem } from './load.js';

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

test('YAML syntax errors, unknown and planned kinds are rejected with positions', () => {
  const syntax = parseResources('kind: Service\nspec: [1, 2\n', 's.yaml');
  assert.equal(syntax.ok, false);
  if (!syntax.ok) assert.match(syntax.problems[0]!.message, /^YAML syntax/);
  const unknown = parseResources('apiVersion: x\nkind: Frobnicator\n', 'u.yaml');
  assert.equal(unknown.ok, false);
  if (!unknown.ok) assert.deepEqual([unknown.problems[0]!.line, unknown.problems[0]!.column, unknown.problems[0]!.path], [2, 7, 'kind']);
  const planned = parseResources('apiVersion: x\nkind: TrafficPolicy\n', 'p.yaml');
  assert.equal(planned.ok, false);
  if (!planned.ok) assert.match(planned.problems[0]!.message, /not supported by this version/);
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
  assert.match(problems[2]!.message, /a second MeshConfig/);
});

test('empty files and empty documents are a valid empty set', () => {
  const r = parseResources('', 'empty.yaml');
  assert.ok(r.ok);
  assert.equal(r.resources.length, 0);
  const r2 = parseResources('---\n---\n', 'empty2.yaml');
  assert.ok(r2.ok);
});
