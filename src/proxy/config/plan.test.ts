import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources } from '../../api/v1alpha1/load.js';
import { compilePlan, splitAuthority } from './plan.js';

test('splitAuthority handles names, ports, IPv6 literals and refuses junk', () => {
  assert.deepEqual(splitAuthority('api'), { host: 'api', port: undefined });
  assert.deepEqual(splitAuthority('api:8080'), { host: 'api', port: 8080 });
  assert.deepEqual(splitAuthority('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(splitAuthority('[::1]'), { host: '::1', port: undefined });
  for (const bad of ['', ':80', 'api:0', 'api:65536', 'api:8o', 'a:b:c', '[::1', '[::1]x']) assert.equal(splitAuthority(bad), undefined, bad);
});

test('a plan resolves every name form of a service and picks ports', () => {
  const r = parseResources(`apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  ports: [ { port: 80, appProtocol: http }, { port: 9090, appProtocol: grpc } ]
  hosts: [ API.example.com ]
  endpoints: [ { address: 10.0.0.1, port: 15006 }, { address: 10.0.0.2, port: 15006 } ]
`, 'x.yaml');
  assert.ok(r.ok);
  const plan = compilePlan(r.resources.map((x) => x.resource), 'web', 1);
  for (const h of ['api', 'api.shop', 'api.shop.svc', 'api.shop.svc.cluster.local', 'API.shop.', 'api.example.com']) assert.equal(plan.lookupHost(h)?.name, 'api', h);
  const svc = plan.lookupHost('api')!;
  assert.equal(svc.identity, 'spiffe://mycel.local/ns/shop/svc/api');
  assert.equal(svc.portFor(9090)?.protocol, 'grpc');
  assert.equal(svc.portFor(undefined)?.port, 80);
  assert.equal(svc.portFor(81), undefined);
  const picks = [svc.pickEndpoint()!.address, svc.pickEndpoint()!.address, svc.pickEndpoint()!.address];
  assert.deepEqual(picks, ['10.0.0.1', '10.0.0.2', '10.0.0.1']);
  assert.equal(plan.mesh.timeouts.connectMs, 5000);
  assert.equal(plan.self, undefined);
});

test('a TrafficPolicy is compiled onto the service it targets; other services keep the defaults (null)', () => {
  const r = parseResources(`apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api, namespace: shop }
spec: { ports: [ { port: 80 } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: db, namespace: shop }
spec: { ports: [ { port: 80 } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: api-policy, namespace: shop }
spec:
  targetRef: { kind: Service, name: api }
  loadBalancer: { type: RingHash, hashKey: { header: X-User } }
  connectionPool: { maxRequests: 7 }
`, 'x.yaml');
  assert.ok(r.ok);
  const plan = compilePlan(r.resources.map((x) => x.resource), 'web', 1);
  const api = plan.lookupHost('api.shop')!;
  assert.equal(api.policy?.name, 'shop/api-policy');
  assert.equal(api.policy?.balancer.policy, 'RingHash');
  assert.deepEqual(api.policy?.hashKey, { header: 'x-user' });
  assert.equal(api.policy?.limits.maxRequests, 7);
  assert.equal(plan.lookupHost('db.shop')!.policy, null);
});

test('the mTLS mode: the service\'s own PeerAuthentication, else the mesh-wide one, else STRICT', () => {
  const pa = (name: string, mode: string, target?: string) =>
    `apiVersion: mycel.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: { name: ${name} }\nspec: { ${target ? `targetRef: { kind: Service, name: ${target} }, ` : ''}mtls: { mode: ${mode} } }\n---\n`;
  const modeOf = (yaml: string, service: string) => {
    const r = parseResources(yaml || 'apiVersion: mycel.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: m }\nspec: {}\n', 'pa.yaml');
    assert.ok(r.ok, JSON.stringify(r));
    return compilePlan(r.resources.map((x) => x.resource), service, 1).mtlsMode;
  };
  assert.equal(modeOf('', 'api'), 'STRICT');
  assert.equal(modeOf(pa('all', 'PERMISSIVE'), 'api'), 'PERMISSIVE');
  assert.equal(modeOf(pa('all', 'PERMISSIVE') + pa('api', 'STRICT', 'api'), 'api'), 'STRICT');
  assert.equal(modeOf(pa('api', 'STRICT', 'api') + pa('all', 'PERMISSIVE'), 'web'), 'PERMISSIVE');
  assert.equal(modeOf(pa('web', 'PERMISSIVE', 'web'), 'api'), 'STRICT');
});

test('transparent mode: an address and port lead to the service by its virtual IPs or its endpoints\' addresses', () => {
  const r = parseResources(`apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { outboundTrafficPolicy: { mode: REGISTRY_ONLY } }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 8080 }, { port: 9090 } ]
  addresses: [ 10.96.0.10, "fd00::a" ]
  endpoints: [ { address: 10.0.0.1, port: 15006 }, { address: 10.0.0.2, port: 15006 } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: cache }
spec:
  ports: [ { port: 6379, appProtocol: tcp } ]
  endpoints: [ { address: 10.0.0.2, port: 15006 } ]
  addresses: [ 10.0.0.1 ]
`, 'x.yaml');
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  const plan = compilePlan(r.resources.map((x) => x.resource), 'web', 1);
  assert.equal(plan.mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
  assert.equal(plan.lookupAddress('10.96.0.10', 8080)?.name, 'api');
  assert.equal(plan.lookupAddress('FD00::A', 9090)?.name, 'api');
  assert.equal(plan.lookupAddress('10.0.0.1', 8080)?.name, 'api', 'an endpoint address on a service port');
  assert.equal(plan.lookupAddress('::ffff:10.0.0.2', 9090)?.name, 'api', 'an IPv4-mapped address');
  assert.equal(plan.lookupAddress('10.0.0.2', 6379)?.name, 'cache', 'two services behind one address, told apart by port');
  assert.equal(plan.lookupAddress('10.0.0.1', 6379)?.name, 'cache', 'a virtual IP');
  assert.equal(plan.lookupAddress('10.0.0.1', 15006), undefined, 'the sidecar port is no service port');
  assert.equal(plan.lookupAddress('10.0.0.9', 8080), undefined);
  assert.equal(compilePlan([], 'web', 1).mesh.outboundTrafficPolicy, 'ALLOW_ANY');
});

test('transparent mode: IPv6 addresses as written in a resource match the shortest form the addon reports', () => {
  const r = parseResources(`apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 8080 } ]
  addresses: [ "FD00:0096:0:0::10" ]
  endpoints: [ { address: "fd00:6d79:0000::2", port: 15006 } ]
`, 'x.yaml');
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  const plan = compilePlan(r.resources.map((x) => x.resource), 'web', 1);
  assert.equal(plan.lookupAddress('fd00:96::10', 8080)?.name, 'api', 'a virtual IP');
  assert.equal(plan.lookupAddress('fd00:6d79::2', 8080)?.name, 'api', 'an endpoint address');
  assert.equal(plan.lookupAddress('fd00:6d79::3', 8080), undefined);
});

test('a Service address that is not an IP is refused', () => {
  const r = parseResources(`apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec: { ports: [ { port: 80 } ], addresses: [ 10.0.0.300 ] }
`, 'x.yaml');
  assert.ok(!r.ok);
  assert.match(JSON.stringify(r.problems), /expected an IPv4 or IPv6 address/);
});
