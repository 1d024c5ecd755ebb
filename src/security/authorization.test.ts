import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseResources } from '../api/v1alpha1/load.js';
import { compilePlan } from '../proxy/config/plan.js';
import type { AuthorizationPolicy } from '../api/v1alpha1/policies.js';
import { compileAuthorization, type AuthzRequest } from './authorization.js';

const WEB = 'spiffe://mycel.local/ns/default/svc/web';
const REVIEWS = 'spiffe://mycel.local/ns/default/svc/reviews';
const BATCH = 'spiffe://mycel.local/ns/jobs/svc/batch';

function policies(yaml: string): AuthorizationPolicy[] {
  const parsed = parseResources(yaml, 'authz.yaml');
  assert.ok(parsed.ok, JSON.stringify(parsed));
  return parsed.resources.map((r) => r.resource as AuthorizationPolicy);
}

function doc(name: string, action: 'ALLOW' | 'DENY', rules: string, target = 'api', namespace = 'default'): string {
  return `apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  targetRef: { kind: Service, name: ${target} }
  action: ${action}
${rules}
---
`;
}

function req(principal: string | null, method: string | null, path: string | null, headers: string[] = [], port = 80): AuthzRequest {
  const q = path === null ? -1 : path.indexOf('?');
  return { principal, method, path, pathEnd: path === null ? 0 : q === -1 ? path.length : q, port, headers };
}

const compile = (yaml: string) => compileAuthorization(policies(yaml), 'api', 'default', 'mycel.local');

test('no policy allows everything, even callers without an identity', () => {
  const a = compile(doc('other-service', 'DENY', '  rules: [ {} ]', 'web'));
  assert.equal(a.empty, true);
  assert.equal(a.decide(req(null, 'GET', '/')), null);
});

test('an ALLOW policy allows what it matches and denies the rest, naming the ALLOW policies', () => {
  const a = compile(doc('from-web', 'ALLOW', `  rules:
  - from: [ { source: { principals: [ ${WEB} ] } } ]
    to: [ { operation: { methods: [ GET ], paths: [ /ratings/* ] } } ]`) + doc('health', 'ALLOW', `  rules: [ { to: [ { operation: { paths: [ /healthz ] } } ] } ]`));
  assert.equal(a.decide(req(WEB, 'GET', '/ratings/1')), null);
  assert.equal(a.decide(req(WEB, 'GET', '/ratings/1?x=/admin')), null);
  assert.equal(a.decide(req(REVIEWS, 'GET', '/healthz')), null);
  assert.equal(a.decide(req(WEB, 'POST', '/ratings/1')), 'default/from-web,default/health');
  assert.equal(a.decide(req(REVIEWS, 'GET', '/ratings/1')), 'default/from-web,default/health');
  assert.equal(a.decide(req(WEB, 'GET', '/ratings')), 'default/from-web,default/health', 'the prefix /ratings/* needs the slash');
  assert.equal(a.decide(req(null, 'GET', '/ratings/1')), 'default/from-web,default/health');
});

test('DENY comes first and wins over a matching ALLOW', () => {
  const a = compile(doc('allow-all', 'ALLOW', '  rules: [ {} ]') + doc('no-admin', 'DENY', `  rules: [ { to: [ { operation: { paths: [ /admin, /admin/* ] } } ] } ]`));
  assert.equal(a.decide(req(WEB, 'GET', '/admin')), 'default/no-admin');
  assert.equal(a.decide(req(WEB, 'GET', '/admin/users')), 'default/no-admin');
  assert.equal(a.decide(req(WEB, 'GET', '/administrator')), null);
  assert.equal(a.decide(req(WEB, 'GET', '/ADMIN')), null, 'matching is case-sensitive unless asked');
});

test('ignorePathCase makes /ADMIN match a rule for /admin', () => {
  const a = compile(doc('no-admin', 'DENY', `  rules: [ { to: [ { operation: { paths: [ /admin/* ], ignorePathCase: true } } ] } ]`));
  assert.equal(a.decide(req(WEB, 'GET', '/ADMIN/x')), 'default/no-admin');
  assert.equal(a.decide(req(WEB, 'GET', '/Admin/x')), 'default/no-admin');
  assert.equal(a.decide(req(WEB, 'GET', '/public')), null);
});

test('an ALLOW policy without rules allows nothing; a DENY policy without rules denies nothing', () => {
  assert.equal(compile(doc('nothing', 'ALLOW', '  rules: []')).decide(req(WEB, 'GET', '/')), 'default/nothing');
  assert.equal(compile(doc('nothing', 'DENY', '  rules: []')).decide(req(WEB, 'GET', '/')), null);
});

test('sources: principal prefix and suffix, namespaces, services, notPrincipals', () => {
  const a = compile(doc('src', 'ALLOW', `  rules:
  - from: [ { source: { principals: [ "spiffe://mycel.local/ns/jobs/*" ] } } ]
  - from: [ { source: { services: [ reviews ] } } ]
  - from: [ { source: { namespaces: [ tools ], notPrincipals: [ "*/svc/evil" ] } } ]`));
  assert.equal(a.decide(req(BATCH, 'GET', '/')), null);
  assert.equal(a.decide(req(REVIEWS, 'GET', '/')), null);
  assert.equal(a.decide(req('spiffe://mycel.local/ns/tools/svc/debug', 'GET', '/')), null);
  assert.notEqual(a.decide(req('spiffe://mycel.local/ns/tools/svc/evil', 'GET', '/')), null);
  assert.notEqual(a.decide(req(WEB, 'GET', '/')), null);
  assert.notEqual(a.decide(req('spiffe://other.domain/ns/default/svc/reviews', 'GET', '/')), null, 'services are in the mesh trust domain');
  assert.notEqual(a.decide(req(null, 'GET', '/')), null);
});

test('services may name another namespace', () => {
  const a = compile(doc('src', 'ALLOW', `  rules: [ { from: [ { source: { services: [ jobs/batch ] } } ] } ]`));
  assert.equal(a.decide(req(BATCH, 'GET', '/')), null);
  assert.notEqual(a.decide(req('spiffe://mycel.local/ns/default/svc/batch', 'GET', '/')), null);
});

test('a caller without identity matches notPrincipals but no principals', () => {
  const a = compile(doc('deny-unidentified', 'DENY', `  rules: [ { from: [ { source: { notPrincipals: [ "*" ] } } ] } ]`));
  assert.equal(a.decide(req(null, 'GET', '/')), 'default/deny-unidentified');
  assert.equal(a.decide(req(WEB, 'GET', '/')), null);
});

test('operations: methods, notMethods, notPaths, suffix paths, ports', () => {
  const a = compile(doc('ops', 'ALLOW', `  rules:
  - to: [ { operation: { notMethods: [ DELETE ], paths: [ "*.json" ], notPaths: [ /private/* ] } } ]
  - to: [ { operation: { ports: [ 9090 ] } } ]`));
  assert.equal(a.usesPorts, true);
  assert.equal(a.decide(req(WEB, 'GET', '/data/x.json')), null);
  assert.equal(a.decide(req(WEB, 'GET', '/data/x.json?y.html')), null);
  assert.notEqual(a.decide(req(WEB, 'GET', '/data/x.html?y.json')), null, 'the query is not part of the path');
  assert.notEqual(a.decide(req(WEB, 'DELETE', '/data/x.json')), null);
  assert.notEqual(a.decide(req(WEB, 'GET', '/private/x.json')), null);
  assert.equal(a.decide(req(WEB, 'DELETE', '/anything', [], 9090)), null);
});

test('header conditions: values on any field of the name, notValues on none; other headers never matter', () => {
  const a = compile(doc('hdr', 'ALLOW', `  rules:
  - when:
    - { header: X-Tenant, values: [ "acme", "beta-*" ] }
    - { header: x-debug, notValues: [ "1" ] }`));
  assert.equal(a.decide(req(WEB, 'GET', '/', ['x-tenant', 'acme'])), null);
  assert.equal(a.decide(req(WEB, 'GET', '/', ['x-tenant', 'beta-7'])), null);
  assert.equal(a.decide(req(WEB, 'GET', '/', ['x-tenant', 'other', 'x-tenant', 'acme'])), null);
  assert.notEqual(a.decide(req(WEB, 'GET', '/', ['x-tenant', 'acme', 'x-debug', '1'])), null);
  assert.notEqual(a.decide(req(WEB, 'GET', '/', ['x-tenant', 'acme', 'x-debug', '0', 'x-debug', '1'])), null);
  assert.notEqual(a.decide(req(WEB, 'GET', '/', [])), null);
});

test('TCP connections: ALLOW rules with HTTP-only fields do not match, DENY rules ignore those fields', () => {
  const allow = compile(doc('http-only', 'ALLOW', `  rules:
  - from: [ { source: { principals: [ ${WEB} ] } } ]
    to: [ { operation: { methods: [ GET ] } } ]
  - from: [ { source: { principals: [ ${REVIEWS} ] } } ]
    to: [ { operation: { ports: [ 80 ] } } ]`));
  assert.notEqual(allow.decide(req(WEB, null, null)), null);
  assert.equal(allow.decide(req(REVIEWS, null, null, [], 80)), null);
  assert.notEqual(allow.decide(req(REVIEWS, null, null, [], 81)), null);
  const deny = compile(doc('deny-web-get', 'DENY', `  rules:
  - from: [ { source: { principals: [ ${WEB} ] } } ]
    to: [ { operation: { methods: [ GET ] } } ]
    when: [ { header: x-a, values: [ b ] } ]`));
  assert.equal(deny.decide(req(WEB, null, null)), 'default/deny-web-get');
  assert.equal(deny.decide(req(REVIEWS, null, null)), null);
});

test('policies of another namespace or service do not apply', () => {
  const a = compile(doc('elsewhere', 'DENY', '  rules: [ {} ]', 'api', 'jobs') + doc('web-only', 'DENY', '  rules: [ {} ]', 'web'));
  assert.equal(a.empty, true);
});

test('a policy that cannot be compiled fails closed', () => {
  const broken = (action: 'ALLOW' | 'DENY') =>
    ({ apiVersion: 'mycel.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'broken', namespace: 'default' }, spec: { targetRef: { kind: 'Service', name: 'api' }, action, rules: [{ from: 'nonsense' }] } }) as unknown as AuthorizationPolicy;
  const deny = compileAuthorization([broken('DENY')], 'api', 'default', 'mycel.local');
  assert.equal(deny.decide(req(WEB, 'GET', '/')), 'default/broken');
  assert.equal(deny.broken.length, 1);
  const allow = compileAuthorization([broken('ALLOW'), ...policies(doc('all', 'ALLOW', '  rules: [ { to: [ { operation: { paths: [ /open ] } } ] } ]'))], 'api', 'default', 'mycel.local');
  assert.equal(allow.decide(req(WEB, 'GET', '/')), 'default/broken,default/all');
  assert.equal(allow.decide(req(WEB, 'GET', '/open')), null);
});

test('path patterns must be in normalised form, or they could never match', () => {
  for (const bad of ['/a//b', '/a/../b', '/a/./b', '/a;x', '/%2e%2e/x', '/a%2Fb', '/%61dmin', '/a?x=1', '/caf%c3%a9']) {
    const parsed = parseResources(doc('p', 'DENY', `  rules: [ { to: [ { operation: { paths: [ "${bad}" ] } } ] } ]`), 'p.yaml');
    assert.equal(parsed.ok, false, `${bad} was accepted`);
  }
  for (const good of ['/a/b', '/a/*', '/a/', '*.json', '*', '/caf%C3%A9']) {
    const parsed = parseResources(doc('p', 'DENY', `  rules: [ { to: [ { operation: { paths: [ "${good}" ] } } ] } ]`), 'p.yaml');
    assert.ok(parsed.ok, `${good} was refused: ${JSON.stringify(parsed)}`);
  }
});

test('the demo\'s ratings-authz.yaml: reviews may GET /ratings/ID, nothing else is allowed', async () => {
  const demo = fileURLToPath(new URL('../../../examples/demo/', import.meta.url));
  const yaml = (await readFile(demo + '00-mesh.yaml', 'utf8')) + '\n---\n' + (await readFile(demo + 'ratings-authz.yaml', 'utf8'));
  const parsed = parseResources(yaml, 'demo.yaml');
  assert.ok(parsed.ok, JSON.stringify(parsed));
  const authz = compilePlan(parsed.resources.map((r) => r.resource), 'ratings', 1).authz;
  const ratings = (principal: string | null, method: string, path: string) => authz.decide(req(principal, method, path));
  assert.equal(ratings(REVIEWS, 'GET', '/ratings/7'), null);
  assert.equal(ratings(REVIEWS, 'POST', '/ratings/7'), 'default/ratings-from-reviews');
  assert.equal(ratings(REVIEWS, 'GET', '/admin'), 'default/ratings-from-reviews');
  assert.equal(ratings(WEB, 'GET', '/ratings/7'), 'default/ratings-from-reviews');
  assert.equal(ratings(null, 'GET', '/ratings/7'), 'default/ratings-from-reviews');
  // Other services' sidecars are not affected.
  assert.equal(compilePlan(parsed.resources.map((r) => r.resource), 'reviews', 1).authz.empty, true);
});
