import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertInvalidCases, onlyResource } from '../../../test/helpers/resource-cases.js';
import { defaultMeshConfigSpec } from './resources.js';

const mesh = (body: string) => `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
${body}
`;
const service = (body: string) => `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
${body}
`;

test('MeshConfig certificates and telemetry have defaults, beside the existing sections', () => {
  const spec = defaultMeshConfigSpec();
  assert.deepEqual(spec.certificates, { workloadLifetime: '24h', rootLifetime: '8760h', renewAt: 0.5, backdate: '5m' });
  assert.deepEqual(spec.telemetry, { accessLog: { enabled: false, format: 'json' }, tracing: { sampling: 1 } });
  assert.equal(spec.timeouts.connect, '5s');
  const r = onlyResource(mesh('  certificates: { workloadLifetime: 1h, renewAt: 0.8 }\n  telemetry:\n    otlp: { endpoint: "http://127.0.0.1:4318" }\n    accessLog: { enabled: true, format: text }\n    tracing: { sampling: 100 }'));
  if (r.kind !== 'MeshConfig') return assert.fail(`kind ${r.kind}`);
  assert.deepEqual(r.spec.certificates, { workloadLifetime: '1h', rootLifetime: '8760h', renewAt: 0.8, backdate: '5m' });
  assert.deepEqual(r.spec.telemetry, { otlp: { endpoint: 'http://127.0.0.1:4318' }, accessLog: { enabled: true, format: 'text' }, tracing: { sampling: 100 } });
});

test('invalid MeshConfig and Service documents are reported at the field, with the reason', () => {
  assertInvalidCases([
    { name: 'renewAt of 1', yaml: mesh('  certificates: { renewAt: 1 }'), problems: ['f.yaml:5:28 spec.certificates.renewAt: expected a fraction below 1'] },
    { name: 'root shorter than leaf', yaml: mesh('  certificates: { workloadLifetime: 48h, rootLifetime: 24h }'), problems: ['f.yaml:5:37 spec.certificates.workloadLifetime: expected at most rootLifetime (24h)'] },
    { name: 'zero lifetime', yaml: mesh('  certificates: { workloadLifetime: "0" }'), problems: ['f.yaml:5:37 spec.certificates.workloadLifetime: expected a duration above 0'] },
    { name: 'OTLP endpoint not a URL', yaml: mesh('  telemetry: { otlp: { endpoint: collector:4318 } }'), problems: ['f.yaml:5:34 spec.telemetry.otlp.endpoint: expected an http:// or https:// URL'] },
    { name: 'OTLP without endpoint', yaml: mesh('  telemetry: { otlp: {} }'), problems: ['f.yaml:5:22 spec.telemetry.otlp.endpoint: missing field "endpoint"'] },
    { name: 'access log format', yaml: mesh('  telemetry: { accessLog: { format: xml } }'), problems: ['f.yaml:5:37 spec.telemetry.accessLog.format: expected json or text'] },
    { name: 'sampling over 100', yaml: mesh('  telemetry: { tracing: { sampling: 101 } }'), problems: ['f.yaml:5:37 spec.telemetry.tracing.sampling: expected a percentage <= 100'] },
    { name: 'bad connect timeout', yaml: mesh('  timeouts: { connect: soon }'), problems: ['f.yaml:5:24 spec.timeouts.connect: expected a duration such as "250ms", "10s", "1m"'] },
    { name: 'no ports', yaml: service('  ports: []'), problems: ['f.yaml:5:10 spec.ports: a Service needs at least one port'] },
    { name: 'port without number', yaml: service('  ports: [{ appProtocol: http }]'), problems: ['f.yaml:5:11 spec.ports[0].port: missing field "port"'] },
    { name: 'unknown protocol', yaml: service('  ports: [{ port: 80, appProtocol: udp }]'), problems: ['f.yaml:5:36 spec.ports[0].appProtocol: expected one of http, http2, grpc, tcp'] },
    { name: 'name not a DNS label', yaml: service('  ports: [{ port: 80 }]').replace('name: api', 'name: API'), problems: ['f.yaml:3:19 metadata.name: expected a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit'] },
  ]);
});
